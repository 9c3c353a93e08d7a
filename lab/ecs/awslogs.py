"""The `awslogs` log driver: a container's stdout/stderr as CloudWatch Logs events, on the control
plane's Logs API (moto's `logs`, served on the same endpoint as ECS).

On EC2 the docker daemon runs this driver (moby `daemon/logger/awslogs`) with the options the ECS
agent passes from the task definition (AWS ECS developer guide, "Using the awslogs log driver"):
- `awslogs-group` (required) and `awslogs-region` (default: the instance's region);
- `awslogs-create-group: "true"` creates the group when the container starts; without it a missing
  group fails the container's creation, and the task stops with the daemon's error;
- `awslogs-stream-prefix`: the stream is `<prefix>/<container name>/<task id>` (the ECS agent's
  naming); without a prefix docker names the stream after the container id.
Events are batched as docker batches them: sent every 5 s (`batchPublishFrequency`, or
`awslogs-force-flush-interval-seconds`), or sooner when a batch reaches 10,000 events or about 1 MB,
and what is left is sent when the container stops. An option docker does not know fails the
container as docker does; known ones that reshape events (`awslogs-multiline-pattern`,
`awslogs-datetime-format`, `awslogs-format`, `awslogs-endpoint`, ...) are refused by name.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

import boto3

from lab.ecs.client import DUMMY_ACCESS_KEY, DUMMY_SECRET_KEY
from lab.tasks import LogConfiguration

log = logging.getLogger("lab.ecs.awslogs")

PUBLISH_INTERVAL = 5.0  # moby awslogs batchPublishFrequency
MAX_BATCH_EVENTS = 10_000  # CloudWatch PutLogEvents limit (moby maximumLogEventsPerPut)
MAX_BATCH_BYTES = 1_048_576  # CloudWatch PutLogEvents limit (moby maximumBytesPerPut)
EVENT_OVERHEAD = 26  # bytes CloudWatch counts per event on top of its message (moby perEventBytes)
CREATE_ERROR = ("CannotStartContainerError: Error response from daemon: failed to initialize logging "
                "driver: ")


# Options docker's awslogs driver takes (moby daemon/logger/awslogs ValidateLogOpt, plus the generic
# `mode`/`max-buffer-size`), and `awslogs-stream-prefix`, which the ECS agent turns into the stream.
KNOWN_OPTIONS = frozenset({
    "awslogs-region", "awslogs-endpoint", "awslogs-group", "awslogs-stream", "awslogs-create-group",
    "awslogs-datetime-format", "awslogs-multiline-pattern", "awslogs-credentials-endpoint",
    "awslogs-force-flush-interval-seconds", "awslogs-max-buffered-events", "awslogs-format", "tag",
    "mode", "max-buffer-size", "awslogs-stream-prefix",
})
# Known options that change what becomes an event or where it goes: the lab does not reproduce them.
NOT_REPRODUCED = frozenset({"awslogs-datetime-format", "awslogs-multiline-pattern", "awslogs-endpoint",
                            "awslogs-credentials-endpoint", "awslogs-format", "tag"})


class AwsLogsError(RuntimeError):
    """The driver cannot start; the text is what ECS puts in the task's stoppedReason."""


def stream_name(options: dict[str, str], container: str, task_arn: str, docker_id: str) -> str:
    prefix = options.get("awslogs-stream-prefix")
    if prefix:
        return f"{prefix}/{container}/{task_arn.rsplit('/', 1)[-1]}"
    return options.get("awslogs-stream") or docker_id


class AwsLogsDriver:
    """One container's awslogs stream. `start()` checks/creates the group and stream (raising
    AwsLogsError as docker fails the container), `add()` takes lines, `close()` sends the rest."""

    def __init__(self, endpoint: str, default_region: str, config: LogConfiguration, *, container: str,
                 task_arn: str, docker_id: str) -> None:
        options = config.options
        for key in sorted(options):
            if key not in KNOWN_OPTIONS:
                raise AwsLogsError("CannotCreateContainerError: Error response from daemon: unknown log opt "
                                   f"'{key}' for awslogs log driver")
            if key in NOT_REPRODUCED:
                raise AwsLogsError(f"UnsupportedField: logConfiguration.options.{key} is not supported "
                                   "by the lab's awslogs driver")
        self.publish_interval = PUBLISH_INTERVAL
        if options.get("awslogs-force-flush-interval-seconds"):
            try:
                self.publish_interval = float(options["awslogs-force-flush-interval-seconds"])
            except ValueError:
                raise AwsLogsError("CannotCreateContainerError: Error response from daemon: invalid value "
                                   "for awslogs-force-flush-interval-seconds") from None
        self.group = options.get("awslogs-group", "")
        if not self.group:
            raise AwsLogsError(CREATE_ERROR + "must specify a value for log opt 'awslogs-group'")
        self.region = options.get("awslogs-region") or default_region
        self.create_group = options.get("awslogs-create-group", "false").lower() == "true"
        self.stream = stream_name(options, container, task_arn, docker_id)
        self.client: Any = boto3.client("logs", endpoint_url=endpoint, region_name=self.region,
                                        aws_access_key_id=DUMMY_ACCESS_KEY,
                                        aws_secret_access_key=DUMMY_SECRET_KEY)
        self._events: list[dict] = []
        self._bytes = 0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.sent = 0
        self.errors: list[str] = []

    def start(self) -> AwsLogsDriver:
        from botocore.exceptions import ClientError

        try:
            if self.create_group:
                try:
                    self.client.create_log_group(logGroupName=self.group)
                except ClientError as exc:
                    if exc.response["Error"]["Code"] != "ResourceAlreadyExistsException":
                        raise
            try:
                self.client.create_log_stream(logGroupName=self.group, logStreamName=self.stream)
            except ClientError as exc:
                code = exc.response["Error"]["Code"]
                if code == "ResourceNotFoundException":
                    raise AwsLogsError(CREATE_ERROR + "failed to create Cloudwatch log stream: "
                                       "ResourceNotFoundException: The specified log group does not "
                                       "exist.") from None
                if code != "ResourceAlreadyExistsException":
                    raise
        except ClientError as exc:
            err = exc.response["Error"]
            raise AwsLogsError(CREATE_ERROR + f"{err['Code']}: {err.get('Message', '')}") from None
        self._thread = threading.Thread(target=self._publish_loop, daemon=True,
                                        name=f"awslogs-{self.stream}")
        self._thread.start()
        return self

    def add(self, lines: list[tuple[str, str]]) -> None:
        """Lines the container wrote ([(stream, line), ...]), as events stamped when read."""
        now = int(time.time() * 1000)
        for _stream, line in lines:
            event = {"timestamp": now, "message": line}
            size = len(line.encode()) + EVENT_OVERHEAD
            with self._lock:
                full = (len(self._events) + 1 > MAX_BATCH_EVENTS or self._bytes + size > MAX_BATCH_BYTES)
                batch = self._take() if full else None
                self._events.append(event)
                self._bytes += size
            if batch:
                self._put(batch)

    def _take(self) -> list[dict]:
        batch, self._events, self._bytes = self._events, [], 0
        return batch

    def _put(self, batch: list[dict]) -> None:
        try:
            self.client.put_log_events(logGroupName=self.group, logStreamName=self.stream, logEvents=batch)
            self.sent += len(batch)
        except Exception as exc:  # noqa: BLE001 - docker logs the failure and drops the batch
            self.errors.append(repr(exc))
            log.warning("awslogs %s/%s: PutLogEvents failed: %r", self.group, self.stream, exc)

    def _publish_loop(self) -> None:
        while not self._stop.wait(self.publish_interval):
            with self._lock:
                batch = self._take()
            if batch:
                self._put(batch)

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
        with self._lock:
            batch = self._take()
        if batch:
            self._put(batch)
