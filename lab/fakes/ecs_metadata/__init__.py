"""Fake ECS agent endpoints: introspection (51678), task metadata v2/v3/v4, task-role credentials.

`EcsMetadata` (model.py) answers from `lab.world.World` without sockets; `EcsMetadataServer`
(server.py) serves it; `container_env` and `write_metadata_file` give a container what ECS
injects; stats.py measures real processes or docker containers.
"""

from .model import EcsMetadata, container_env, metadata_file_json, write_metadata_file
from .server import EcsMetadataServer

__all__ = ["EcsMetadata", "EcsMetadataServer", "container_env", "metadata_file_json", "write_metadata_file"]
