"""Tag values that change from run to run, replaced by a placeholder so two runs compare equal.

A tag is compared as `key:value` with its volatile parts normalised: container ids, task and
container ARNs, EC2 instance ids, IP addresses, UUIDs, timestamps, long numbers and long hex runs
(docker names end in one). Keys whose whole value is an identity of one run (`container_id`,
`task_arn`, `host`, `pid`...) keep only the key. What stays is what a user writes in a query or a
monitor: `task_family:web-task`, `ecs_cluster_name:ecs-lab`, `env:lab`.
"""

from __future__ import annotations

import re

# Keys whose value identifies one container, task, host or process of one run.
VOLATILE_KEYS = frozenset({
    "container_id", "task_arn", "container_arn", "host", "hostname", "host_name", "pid", "runtime-id",
    "runtime_id", "instance-id", "instance_id", "docker_id", "process_id", "timestamp",
})

_PATTERNS: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"arn:aws[a-z-]*:[a-z0-9-]+:[a-z0-9-]*:\d*:[^\s,]+"), "<arn>"),
    (re.compile(r"\b[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\b"), "<uuid>"),
    (re.compile(r"\b\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}:\d{2}(?:\.\d+)?(?:Z|[+-]\d{2}:?\d{2})?"), "<time>"),
    (re.compile(r"\bi-[0-9a-f]{8,17}\b"), "<instance-id>"),
    (re.compile(r"\b(?:\d{1,3}\.){3}\d{1,3}\b"), "<ip>"),
    (re.compile(r"(?<![0-9a-zA-Z])(?=[0-9a-f]*\d)[0-9a-f]{12,}(?![0-9a-zA-Z])"), "<hex>"),
    (re.compile(r"(?<![\w.])\d{6,}(?![\w.])"), "<num>"),
)

# The tags the Datadog agent adds from ECS and docker metadata (the agent's ECS and docker taggers).
ECS_TAG_KEYS = frozenset({
    "task_name", "task_family", "task_version", "task_arn", "ecs_cluster_name", "cluster_name",
    "ecs_container_name", "ecs_service", "region", "availability_zone", "availability-zone",
    "aws_account", "container_name", "container_id", "image_name", "short_image", "image_tag",
    "docker_image", "image_id",
})


def split_tag(tag: str) -> tuple[str, str]:
    """`key:value` -> (key, value); a bare tag is its own key with an empty value."""
    key, sep, value = tag.partition(":")
    return (key, value) if sep else (tag, "")


def normalise_value(value: str) -> str:
    for pattern, placeholder in _PATTERNS:
        value = pattern.sub(placeholder, value)
    return value


def normalise_tag(tag: str) -> str:
    """A tag with its run-specific parts replaced: `task_arn:arn:aws:...` -> `task_arn:<task_arn>`."""
    key, value = split_tag(tag)
    if not value and ":" not in tag:
        return normalise_value(tag)
    if key in VOLATILE_KEYS:
        return f"{key}:<{key}>"
    return f"{key}:{normalise_value(value)}"


def tag_key(tag: str) -> str:
    return split_tag(tag)[0]
