"""Read and check a task definition file the way `aws ecs register-task-definition --cli-input-json`
does, before anything runs.

Two layers, as in AWS:
- the client side (the CLI and every SDK built on botocore): the file must be JSON, and the object
  must match the `RegisterTaskDefinition` input shape of the ECS service model. botocore's own
  `ParamValidator` over that shape gives the CLI's exact messages ("Unknown parameter in
  containerDefinitions[0]: "bogus", must be one of: ...", "Invalid type for parameter
  containerDefinitions[0].memory, value: 256, type: <class 'str'>, valid types: <class 'int'>").
- the server side (ECS's `ClientException`s) for the few rules the shape cannot say: a container
  needs a name and an image, and on EC2 a memory limit somewhere.
"""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path
from typing import Any

# Read-only keys `describe-task-definition` prints; users paste them back and the CLI refuses them.
DESCRIBE_ONLY_KEYS = ("taskDefinitionArn", "revision", "status", "requiresAttributes", "compatibilities",
                      "registeredAt", "registeredBy", "deregisteredAt")


# `logConfiguration.logDriver` values ECS takes (API reference, LogConfiguration), in its order;
# Fargate takes three of them.
LOG_DRIVERS = ("json-file", "syslog", "journald", "gelf", "fluentd", "awslogs", "splunk", "awsfirelens")
FARGATE_LOG_DRIVERS = ("awslogs", "splunk", "awsfirelens")


class TaskDefinitionError(ValueError):
    """A task definition `register-task-definition` would refuse. `str()` is the CLI's text."""

    def __init__(self, message: str, *, fields: list[str] | None = None, source: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.fields = fields or []
        self.source = source


@lru_cache(maxsize=1)
def _input_shape() -> Any:
    import botocore.session

    model = botocore.session.get_session().get_service_model("ecs")
    return model.operation_model("RegisterTaskDefinition").input_shape


def parse_json(text: str, *, source: str = "") -> dict:
    """Parse as the CLI parses `--cli-input-json`; the error text is the CLI's."""
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise TaskDefinitionError(
            f"Error parsing parameter 'cli-input-json': Invalid JSON: {exc}\nJSON received: {text}",
            fields=["cli-input-json"], source=source) from None
    if not isinstance(data, dict):
        raise TaskDefinitionError(
            "Error parsing parameter 'cli-input-json': Invalid JSON: expected a JSON object, got "
            f"{type(data).__name__}", fields=["cli-input-json"], source=source)
    return data


def validate(taskdef: dict, *, source: str = "") -> None:
    """Raise TaskDefinitionError with botocore's (= the CLI's) message, naming every bad field."""
    from botocore.validate import ParamValidator

    report = ParamValidator().validate(taskdef, _input_shape())
    if report.has_errors():
        fields = [_field_of(err) for err in report._errors]
        message = report.generate_report()
        hint = [k for k in DESCRIBE_ONLY_KEYS if k in taskdef]
        if hint:
            message += ("\n(hint: " + ", ".join(hint) + " come from describe-task-definition output; "
                        "register-task-definition does not take them)")
        raise TaskDefinitionError("Parameter validation failed:\n" + message, fields=fields, source=source)
    problems = server_side_errors(taskdef)
    if problems:
        raise TaskDefinitionError(
            "An error occurred (ClientException) when calling the RegisterTaskDefinition operation: "
            + problems[0], fields=["containerDefinitions"], source=source)


def _field_of(err: tuple) -> str:
    kind, name = err[0], err[1]
    if kind == "unknown field":
        unknown = err[2]["unknown_param"]
        return f"{name}.{unknown}".lstrip(".") if name else unknown
    if kind == "missing required field":
        required = err[2]["required_name"]
        return f"{name}.{required}".lstrip(".") if name else required
    return name.lstrip(".")


def server_side_errors(taskdef: dict) -> list[str]:
    """ECS's own `ClientException` messages for rules the API shape does not encode."""
    problems: list[str] = []
    containers = taskdef.get("containerDefinitions") or []
    if not containers:
        problems.append("Container list cannot be empty.")
    on_ec2 = "FARGATE" not in (taskdef.get("requiresCompatibilities") or [])
    for c in containers:
        name = c.get("name")
        if not name:
            problems.append("Container.name should not be null or empty.")
            continue
        if not c.get("image"):
            problems.append("Container.image should not be null or empty.")
        if on_ec2 and not taskdef.get("memory") and not c.get("memory") and not c.get("memoryReservation"):
            problems.append(f"Invalid setting for container '{name}'. At least one of 'memory' or "
                            "'memoryReservation' must be specified.")
    valid_drivers = FARGATE_LOG_DRIVERS if not on_ec2 else LOG_DRIVERS
    for c in containers:
        driver = (c.get("logConfiguration") or {}).get("logDriver")
        if driver is not None and driver not in valid_drivers:
            problems.append(f"{driver} is not a valid log driver. Must be one of [{','.join(valid_drivers)}]")
    names = [c.get("name") for c in containers if c.get("name")]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        problems.append(f"Duplicate container names are not allowed: {dupes[0]}")
    volumes = {v.get("name") for v in taskdef.get("volumes") or []}
    for c in containers:
        for mp in c.get("mountPoints") or []:
            src = mp.get("sourceVolume")
            if src and src not in volumes:
                problems.append(f"Invalid 'mountPoints' setting for container '{c.get('name')}'. "
                                f"Unknown volume '{src}'.")
    return problems


def load(path: str | Path) -> dict:
    """Read a task definition file (`file://` prefix allowed, as the CLI takes it) and validate it."""
    p = Path(str(path).removeprefix("file://"))
    try:
        text = p.read_text()
    except OSError as exc:
        raise TaskDefinitionError(f"Error parsing parameter 'cli-input-json': Unable to load paramfile "
                                  f"file://{p}: {exc}", fields=["cli-input-json"], source=str(p)) from None
    data = parse_json(text, source=str(p))
    validate(data, source=str(p))
    return data
