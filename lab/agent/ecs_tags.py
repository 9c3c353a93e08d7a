"""ECS container tags, from task metadata v4 JSON, at the agent's three cardinalities.

docs/ecs_metadata.md#what-the-datadog-agent-relies-on and pkg/tagger (workloadmeta ECS + docker extractors):
low cardinality `task_name, task_family, task_version, ecs_cluster_name, cluster_name, ecs_container_name,
ecs_service, region, aws_account` plus the docker tags `image_name, short_image, image_tag,
container_name`; orchestrator adds `task_arn`; high adds `container_id` and `display_container_name`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

CARDINALITIES = ("low", "orchestrator", "high")


def parse_image(image: str) -> tuple[str, str, str]:
    """ "registry/ns/name:tag@sha" -> (image_name, short_image, image_tag) like pkg/util/containers."""
    name = image.split("@", 1)[0]
    tag = "latest"
    last = name.rsplit("/", 1)[-1]
    if ":" in last:
        name, tag = name.rsplit(":", 1)
    short = name.rsplit("/", 1)[-1]
    return name, short, tag


def cluster_name_of(cluster: str) -> str:
    """A cluster ARN or name, as its name."""
    return cluster.rsplit("/", 1)[-1] if cluster.startswith("arn:") else cluster


@dataclass
class ContainerTags:
    docker_id: str
    name: str
    task_arn: str
    low: list[str] = field(default_factory=list)
    orchestrator: list[str] = field(default_factory=list)
    high: list[str] = field(default_factory=list)
    labels: dict[str, str] = field(default_factory=dict)  # the container's docker labels
    image: str = ""

    def at(self, cardinality: str = "low") -> list[str]:
        tags = list(self.low)
        if cardinality in ("orchestrator", "high"):
            tags += self.orchestrator
        if cardinality == "high":
            tags += self.high
        return tags


def container_tags(task: dict, container: dict) -> ContainerTags:
    """Tags for one container of a task (`<ECS_CONTAINER_METADATA_URI_V4>/task` JSON)."""
    arn = task.get("TaskARN") or task.get("Arn") or ""
    parts = arn.split(":")
    region = parts[3] if len(parts) > 5 else ""
    account = parts[4] if len(parts) > 5 else ""
    cluster = cluster_name_of(
        task.get("Cluster", "") or container.get("Labels", {}).get("com.amazonaws.ecs.cluster", "")
    )
    family = task.get("Family", "")
    revision = str(task.get("Revision", task.get("Version", "")))
    low = [
        f"task_name:{family}",
        f"task_family:{family}",
        f"task_version:{revision}",
        f"ecs_cluster_name:{cluster}",
        f"cluster_name:{cluster}",
        f"ecs_container_name:{container.get('Name', '')}",
    ]
    if task.get("ServiceName"):
        low.append(f"ecs_service:{task['ServiceName']}")
    if region:
        low.append(f"region:{region}")
    if account:
        low.append(f"aws_account:{account}")
    image = container.get("Image", "")
    if image:
        image_name, short, tag = parse_image(image)
        low += [f"image_name:{image_name}", f"short_image:{short}", f"image_tag:{tag}"]
    docker_name = container.get("DockerName", "")
    if docker_name:
        low.append(f"container_name:{docker_name}")
    docker_id = container.get("DockerId", "")
    return ContainerTags(
        docker_id=docker_id,
        name=container.get("Name", ""),
        task_arn=arn,
        low=[t for t in low if not t.endswith(":")],
        orchestrator=[f"task_arn:{arn}"] if arn else [],
        high=[f"container_id:{docker_id}", f"display_container_name:{docker_name}"] if docker_id else [],
        labels=dict(container.get("Labels") or {}),
        image=image,
    )
