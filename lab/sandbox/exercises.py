"""Break/fix exercises on a live lab: `ecs-lab exercise list | start ID | check | hint | solve | reset`.

Each exercise breaks the running lab the way the Datadog ECS docs warn about (or users hit), and
only through what a user has: a new task definition revision and `update-service` on the control
plane, the instance's metadata options (the lab's IMDS policy call stands in for
`aws ec2 modify-instance-metadata-options`), or the instance's ECS agent settings (the lab's config
call on the ECS agent's introspection port stands in for editing /etc/ecs/ecs.config and restarting
the agent). `check` is the doctor's live walk
(`lab.sandbox.doctor.walk`): it passes only when every hop carries data to the intake again, and its
failure names the first hop still broken. `reset` puts back the task definitions and metadata
options recorded at `start`.

The active exercise is kept in `<lab home>/exercise.json`, so `check`, `hint` and `solve` in later
commands (or the dashboard) know which one runs.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from lab.ecs.translate import execution_role
from lab.sandbox.doctor import Report, walk
from lab.sandbox.target import (
    LabTarget,
    TargetError,
    container,
    http_get,
    instance_url,
    registrable,
    set_env,
)
from lab.sandbox.texts import LANGS, TEXTS
from lab.stack import AGENT_SERVICE, app_service

SECRET_NAME = "datadog-api-key"
# A variable whose only purpose is a new revision, hence a new deployment (apps read their agent
# host when they start).
DEPLOYMENT_MARKER = "LAB_DEPLOYMENT"
# An ARN of the right shape whose secret does not exist (Secrets Manager adds a 6-character suffix).
MISSING_SECRET_ARN = f"arn:aws:secretsmanager:us-east-1:123456789012:secret:{SECRET_NAME}-AbC123"


BACKENDS = ("local", "docker")


@dataclass(frozen=True)
class Exercise:
    id: str
    hop: str  # the hop (prefix) the doctor names first while it is broken
    service: str  # the service it redeploys
    breaks: Callable[[LabTarget], None]
    fixes: Callable[[LabTarget], None]
    # The backends whose lab it breaks as the story tells (docs/sandbox.md#exercises-and-backends).
    backends: tuple[str, ...] = BACKENDS
    # Why a backend is left out (shown by `exercise start` on it).
    not_on: str = ""

    def text(self, lang: str = "en") -> dict:
        lang = lang if lang in LANGS else "en"
        return TEXTS[self.id][lang]


# -- the breaks and fixes, as a user would type them ---------------------------------------------------


def _agent_env(name: str, value: str | None) -> Callable[[LabTarget], None]:
    def change(target: LabTarget) -> None:
        _roll(target, AGENT_SERVICE, lambda td: set_env(container(td, agent=True), name, value))

    return change


def _roll(target: LabTarget, service: str, change: Callable[[dict], None], need_running: bool = True) -> None:
    arn = target.deploy_revision(service, change)
    target.wait_rolled(service, arn, need_running=need_running)
    target.refresh()


def _host_ports(on: bool) -> Callable[[LabTarget], None]:
    def change(td: dict) -> None:
        c = container(td, agent=True)
        for pm in c.get("portMappings") or []:
            if on:
                pm["hostPort"] = pm["containerPort"]
            else:
                pm.pop("hostPort", None)

    return lambda target: _roll(target, AGENT_SERVICE, change)


def _process_collection(on: bool) -> Callable[[LabTarget], None]:
    def change(td: dict) -> None:
        c = container(td, agent=True)
        set_env(c, "DD_PROCESS_AGENT_ENABLED", str(on).lower())
        set_env(c, "DD_PROCESS_CONFIG_PROCESS_COLLECTION_ENABLED", str(on).lower())

    return lambda target: _roll(target, AGENT_SERVICE, change)


def _fips_without_proxy(target: LabTarget) -> None:
    def change(td: dict) -> None:
        c = container(td, agent=True)
        set_env(c, "DD_FIPS_ENABLED", "true")
        set_env(c, "DD_FIPS_LOCAL_ADDRESS", "127.0.0.1")
        set_env(c, "DD_FIPS_HTTPS", "false")

    _roll(target, AGENT_SERVICE, change)


def _fips_off(target: LabTarget) -> None:
    def change(td: dict) -> None:
        c = container(td, agent=True)
        for name in ("DD_FIPS_ENABLED", "DD_FIPS_LOCAL_ADDRESS", "DD_FIPS_HTTPS"):
            set_env(c, name, None)

    _roll(target, AGENT_SERVICE, change)


def _secret_missing(target: LabTarget) -> None:
    role = execution_role(target.iam)

    def change(td: dict) -> None:
        # With an execution role ECS can assume, so what fails is the secret itself.
        td["executionRoleArn"] = role
        c = container(td, agent=True)
        set_env(c, "DD_API_KEY", None)
        c["secrets"] = [{"name": "DD_API_KEY", "valueFrom": MISSING_SECRET_ARN}]

    # The new agent tasks cannot start: wait only for the old ones to go.
    _roll(target, AGENT_SERVICE, change, need_running=False)


def _secret_created(target: LabTarget) -> None:
    sm = target.secretsmanager
    try:
        arn = sm.describe_secret(SecretId=SECRET_NAME)["ARN"]
    except sm.exceptions.ResourceNotFoundException:
        arn = sm.create_secret(Name=SECRET_NAME, SecretString="0" * 32)["ARN"]

    role = execution_role(target.iam)

    def change(td: dict) -> None:
        td["executionRoleArn"] = role
        c = container(td, agent=True)
        c["secrets"] = [{"name": "DD_API_KEY", "valueFrom": arn}]

    _roll(target, AGENT_SERVICE, change)


def _health_check(command: list[str]) -> Callable[[LabTarget], None]:
    def change(td: dict) -> None:
        container(td, agent=True)["healthCheck"]["command"] = command

    return lambda target: _roll(target, AGENT_SERVICE, change, need_running=False)


def _entry_point_line(variant: str) -> str:
    """The `sh -c` line of the shipped task definition of `variant` (the docs' line)."""
    from lab.ecs.stack_services import APP_TASKDEF_DIR

    td = json.loads((APP_TASKDEF_DIR / f"{variant}.json").read_text())
    return td["containerDefinitions"][0]["entryPoint"][-1]


def _app_line(variant: str, line: Callable[[], str]) -> Callable[[LabTarget], None]:
    def change(td: dict) -> None:
        c = td["containerDefinitions"][0]
        c["entryPoint"] = ["sh", "-c", line()]

    return lambda target: _roll(target, app_service(variant), change)


def _localhost_line() -> str:
    original = _entry_point_line("imdsv1")
    return "export DD_AGENT_HOST=localhost; " + original.split(";", 1)[1].strip()


def _imds_policy(**options: object) -> Callable[[LabTarget], None]:
    """`aws ec2 modify-instance-metadata-options` on every instance (the lab's IMDS policy call):
    tokens_required (HttpTokens), hop_limit (HttpPutResponseHopLimit)."""

    def change(target: LabTarget) -> None:
        for inst in target.instances():
            code, body = http_get(
                f"{instance_url(inst, 'imds')}/ecs-lab/policy",
                method="POST",
                headers={"Content-Type": "application/json"},
                data=json.dumps(options).encode(),
            )
            if code != 200:
                raise TargetError(f"instance {inst['index']}: setting {options} failed: {code} {body}")

    return change


def _imds_tokens(required: bool) -> Callable[[LabTarget], None]:
    return _imds_policy(tokens_required=required)


def _container_metadata(enabled: bool) -> Callable[[LabTarget], None]:
    """ECS_ENABLE_CONTAINER_METADATA in each instance's /etc/ecs/ecs.config, ECS agent restarted (the
    lab's config call on the ECS agent's introspection port)."""

    def change(target: LabTarget) -> None:
        for inst in target.instances():
            code, body = http_get(
                f"{instance_url(inst, 'ecs')}/ecs-lab/config",
                method="POST",
                headers={"Content-Type": "application/json"},
                data=json.dumps({"ECS_ENABLE_CONTAINER_METADATA": str(enabled).lower()}).encode(),
            )
            if code != 200:
                raise TargetError(
                    f"instance {inst['index']}: setting ECS_ENABLE_CONTAINER_METADATA failed: {body}"
                )

    return change


def _redeploy(variant: str, need_running: bool = True) -> Callable[[LabTarget], None]:
    """A new deployment of an app service (a new revision that differs only in a marker variable):
    the app reads its DD_AGENT_HOST when it starts, so instance settings show at its next start."""
    return lambda target: _roll(
        target,
        app_service(variant),
        lambda td: set_env(td["containerDefinitions"][0], DEPLOYMENT_MARKER, str(time.time())),
        need_running=need_running,
    )


# A key of another organization, on the EU site: the only one that site's intake listener accepts
# in the wrong-dd-site exercise (the lab's agents hold a datadoghq.com organization's key).
OTHER_ORG_KEY = "e" * 32


def _site_knows_only(site: str, keys: list[str] | None) -> Callable[[LabTarget], None]:
    def configure(target: LabTarget) -> None:
        target.intake.set_valid_keys(site, keys)

    return configure


def _then(*steps: Callable[[LabTarget], None]) -> Callable[[LabTarget], None]:
    def run(target: LabTarget) -> None:
        for step in steps:
            step(target)

    return run


def _imdsv2_required(target: LabTarget) -> None:
    _imds_tokens(True)(target)
    # The app read IMDS when it started, so the break shows at its next deployment. With tokens
    # required its v1 line yields the 401 body as DD_AGENT_HOST and the tracer refuses that URL:
    # the new task may never run, so only the old one's going is waited for.
    _redeploy("imdsv1", need_running=False)(target)


def _dogstatsd_port(port: str) -> Callable[[LabTarget], None]:
    return _agent_env("DD_DOGSTATSD_PORT", port)


EXERCISES: dict[str, Exercise] = {
    e.id: e
    for e in [
        Exercise("agent-host-ports", "app-apm", AGENT_SERVICE, _host_ports(False), _host_ports(True)),
        Exercise(
            "apm-non-local-traffic",
            "app-apm",
            AGENT_SERVICE,
            _agent_env("DD_APM_NON_LOCAL_TRAFFIC", "false"),
            _agent_env("DD_APM_NON_LOCAL_TRAFFIC", "true"),
        ),
        Exercise(
            "dogstatsd-non-local-traffic",
            "app-dogstatsd",
            AGENT_SERVICE,
            _agent_env("DD_DOGSTATSD_NON_LOCAL_TRAFFIC", "false"),
            _agent_env("DD_DOGSTATSD_NON_LOCAL_TRAFFIC", "true"),
        ),
        Exercise(
            "apm-disabled",
            "app-apm",
            AGENT_SERVICE,
            _agent_env("DD_APM_ENABLED", "false"),
            _agent_env("DD_APM_ENABLED", "true"),
        ),
        Exercise(
            "dogstatsd-port-mismatch",
            "app-dogstatsd",
            AGENT_SERVICE,
            _dogstatsd_port("8135"),
            _dogstatsd_port("8125"),
        ),
        Exercise(
            "app-agent-host-localhost",
            "app-agent-host:web-imdsv1",
            app_service("imdsv1"),
            _app_line("imdsv1", _localhost_line),
            _app_line("imdsv1", lambda: _entry_point_line("imdsv1")),
        ),
        Exercise(
            "imdsv2-required",
            "app-agent-host:web-imdsv1",
            app_service("imdsv1"),
            _imdsv2_required,
            _app_line("imdsv1", lambda: _entry_point_line("imdsv2")),
        ),
        Exercise(
            "imdsv2-hop-limit",
            "app-agent-host:web-imdsv2",
            app_service("imdsv2"),
            # Hardened instances: tokens required, hop limit 1. The token's answer never reaches a
            # bridge-mode container, its v2 line gets no token, then 401 as DD_AGENT_HOST.
            _then(_imds_policy(tokens_required=True, hop_limit=1), _redeploy("imdsv2", need_running=False)),
            _then(_imds_policy(hop_limit=2), _redeploy("imdsv2")),
        ),
        Exercise(
            "container-metadata-disabled",
            "app-agent-host:web-metadata-file",
            app_service("metadata_file"),
            _then(_container_metadata(False), _redeploy("metadata_file", need_running=False)),
            _then(_container_metadata(True), _redeploy("metadata_file")),
        ),
        Exercise(
            "wrong-dd-site",
            "agent-intake",
            AGENT_SERVICE,
            # The organization's key is a datadoghq.com one: the EU site's intake does not know it.
            _then(_site_knows_only("datadoghq.eu", [OTHER_ORG_KEY]), _agent_env("DD_SITE", "datadoghq.eu")),
            _then(_agent_env("DD_SITE", "datadoghq.com"), _site_knows_only("datadoghq.eu", None)),
        ),
        Exercise("fips-without-proxy", "fips", AGENT_SERVICE, _fips_without_proxy, _fips_off),
        Exercise("api-key-secret-missing", "agent-task", AGENT_SERVICE, _secret_missing, _secret_created),
        Exercise(
            "process-collection-off",
            "agent-intake:processes",
            AGENT_SERVICE,
            _process_collection(False),
            _process_collection(True),
        ),
        Exercise(
            "agent-health-check",
            "agent-health",
            AGENT_SERVICE,
            _health_check(["CMD-SHELL", "agent healthz"]),
            _health_check(["CMD-SHELL", "agent health"]),
            backends=("local",),
            not_on=(
                "the docker backend reports an agent task RUNNING only once Docker's health check "
                "has passed, so a health check that never passes shows as an agent task that cannot "
                "start (agent-task), not as a running agent ECS reports UNHEALTHY (agent-health)"
            ),
        ),
    ]
}


def _comparable(td: dict) -> dict:
    out = registrable(td)
    for c in out.get("containerDefinitions") or []:
        env = [e for e in c.get("environment") or [] if e["name"] != DEPLOYMENT_MARKER]
        c["environment"] = sorted(env, key=lambda e: e["name"])
        c["secrets"] = sorted(c.get("secrets") or [], key=lambda e: e["name"])
    return out


def get(exercise_id: str) -> Exercise:
    try:
        return EXERCISES[exercise_id]
    except KeyError:
        raise KeyError(f"no exercise {exercise_id!r}; known: {', '.join(EXERCISES)}") from None


def catalogue(lang: str = "en") -> list[dict]:
    return [
        {
            "id": e.id,
            "hop": e.hop,
            "title": e.text(lang)["title"],
            "story": e.text(lang)["story"],
            "hints": len(e.text(lang)["hints"]),
            "backends": list(e.backends),
        }
        for e in EXERCISES.values()
    ]


class ExerciseSession:
    """The active exercise of one lab, kept in a small JSON file (see the module docstring)."""

    def __init__(self, target: LabTarget, state_file: Path) -> None:
        self.target = target
        self.state_file = Path(state_file)

    def active(self) -> dict | None:
        try:
            data = json.loads(self.state_file.read_text())
        except (OSError, ValueError):
            return None
        return data if data.get("cluster") == self.target.cluster else None

    def _save(self, data: dict | None) -> None:
        if data is None:
            self.state_file.unlink(missing_ok=True)
            return
        self.state_file.parent.mkdir(parents=True, exist_ok=True)
        self.state_file.write_text(json.dumps(data, indent=2))

    def _require(self) -> tuple[dict, Exercise]:
        data = self.active()
        if not data:
            raise TargetError(
                "no exercise is running: `ecs-lab exercise start ID` (see `ecs-lab exercise list`)"
            )
        return data, get(data["id"])

    def start(self, exercise_id: str) -> Exercise:
        ex = get(exercise_id)
        if self.target.backend not in ex.backends:
            raise TargetError(
                f"exercise {ex.id} runs on the {' and '.join(ex.backends)} backend(s), this lab is on "
                f"{self.target.backend}" + (f": {ex.not_on}" if ex.not_on else "")
            )
        if self.active():
            self.reset()
        originals = {svc: self.target.service(svc)["taskDefinition"] for svc in {AGENT_SERVICE, ex.service}}
        self._save(
            {
                "id": ex.id,
                "cluster": self.target.cluster,
                "started_at": time.time(),
                "originals": originals,
                "hints_shown": 0,
            }
        )
        ex.breaks(self.target)
        return ex

    def check(self) -> Report:
        self._require()
        return walk(self.target)

    def hint(self, lang: str = "en") -> str:
        data, ex = self._require()
        hints = ex.text(lang)["hints"]
        n = min(data.get("hints_shown", 0), len(hints) - 1)
        data["hints_shown"] = n + 1
        self._save(data)
        return f"hint {n + 1}/{len(hints)}: {hints[n]}"

    def solve(self, lang: str = "en") -> str:
        _data, ex = self._require()
        ex.fixes(self.target)
        return ex.text(lang)["solution"]

    def _same_definition(self, arn_a: str, arn_b: str) -> bool:
        """Whether two revisions define the same tasks (environment and secrets in any order; the
        deployment marker `_redeploy` adds only forces a new deployment)."""
        return _comparable(self._describe(arn_a)) == _comparable(self._describe(arn_b))

    def _describe(self, arn: str) -> dict:
        return self.target.ecs.describe_task_definition(taskDefinition=arn)["taskDefinition"]

    def reset(self) -> None:
        """Back to the task definitions recorded at start, and the instances' settings the exercises
        change back to the lab's (IMDS tokens optional, hop limit 2, container metadata on)."""
        data = self.active()
        if not data:
            return
        _imds_policy(tokens_required=False, hop_limit=2)(self.target)
        _container_metadata(True)(self.target)
        for svc, arn in data["originals"].items():
            current = self.target.service(svc)["taskDefinition"]
            if current == arn or self._same_definition(current, arn):
                # The solution already put the same definition back under a new revision: rolling
                # the service again would only restart what runs (a DAEMON roll is the slowest step).
                continue
            self.target.ecs.update_service(cluster=self.target.cluster, service=svc, taskDefinition=arn)
            self.target.wait_rolled(svc, arn)
        self.target.refresh()
        self._save(None)
