"""The Docker engine as every part of the lab that uses one sees it (the docker backend, the image
builder, a LocalStack control plane): how to reach it, whether it has an image, the labels that mark
what the lab made (`ecs-lab down --all` removes by them), and testcontainers' Ryuk kept off where its
image cannot be pulled. It sits below `lab.ecs` and `lab.backends`, which both use it.
"""

from __future__ import annotations

import os

# Everything the lab creates on an engine carries these labels.
LABEL = "ecs-agent-lab"
RUN_LABEL = "ecs-agent-lab.run"
ROLE_LABEL = "ecs-agent-lab.role"

ENGINE_HINT = (
    "Get one with `sudo bash .ci/docker-engine.sh` (installs Debian's docker.io and starts dockerd "
    "in the background), or start Docker Desktop / `sudo systemctl start docker`. The local backend "
    "(`--backend local`) needs no Docker."
)


class DockerUnavailable(RuntimeError):
    """No Docker engine answers; the message says how to get one."""


def docker_client(timeout: int = 120):
    """A docker SDK client for the engine in the environment (DOCKER_HOST or the default socket)."""
    try:
        import docker
    except ImportError as exc:  # pragma: no cover - docker is a dependency
        raise DockerUnavailable(f"the `docker` Python package is missing ({exc}); pip install docker"
                                ) from exc
    try:
        client = docker.from_env(timeout=timeout)
        client.ping()
    except Exception as exc:  # noqa: BLE001 - every failure here means "no engine"
        where = os.environ.get("DOCKER_HOST", "unix:///var/run/docker.sock")
        raise DockerUnavailable(f"no Docker engine answers at {where} ({exc}). {ENGINE_HINT}") from None
    return client


def image_exists(client, tag: str) -> bool:
    import docker.errors

    try:
        client.images.get(tag)
        return True
    except docker.errors.ImageNotFound:
        return False


RYUK_SWITCH = "TESTCONTAINERS_RYUK_DISABLED"


def ryuk_off_unless_asked() -> bool:
    """Turn Ryuk off when the user said nothing (testcontainers would try to pull its image before
    the first container); a user who exports TESTCONTAINERS_RYUK_DISABLED=false and has the image
    keeps it. Returns whether Ryuk is off."""
    from testcontainers.core.config import testcontainers_config

    if RYUK_SWITCH not in os.environ:
        os.environ[RYUK_SWITCH] = "true"
        # testcontainers reads the variable once and caches it: another import may have read it first.
        testcontainers_config.ryuk_disabled = True
    return bool(testcontainers_config.ryuk_disabled)
