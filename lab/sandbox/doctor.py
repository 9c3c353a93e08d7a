"""`ecs-lab doctor`: walk every hop of a running lab (or check a task definition file) and name the
first one that is broken, with its evidence and its fix.

The live walk observes the lab only as a user of a real cluster can (docs/sandbox.md#doctor): the
control plane's `describe-services` / `describe-tasks` (tasks, stopped reasons, ECS health status),
the metadata endpoints an app on the instance calls, the sample apps' own `/` (which agent host they
resolved), and the intake (data that arrived since the walk began, per app and per data type). The
agent itself is a black box: whether it received an app's traces is judged by the traces of that
app's service reaching the intake while the agent's own data (check runs, series) does.

Hops, in the order data needs them (the first broken one is the one to fix):

    agent-task            the control plane runs an agent task on every instance
    agent-health          ECS reports the agent container HEALTHY (`agent health` check)
    fips                  with DD_FIPS_ENABLED: the proxy sidecar is there and data passes through it
    agent-intake:<type>   check runs, series, processes reach the intake
    imds                  each instance's IMDS answers local-ipv4 (v1 or the v2 token flow)
    ecs-metadata          each instance's ECS agent introspection answers /v1/metadata
    app-agent-host:<svc>  the app resolved DD_AGENT_HOST to its instance's private IP
    app-apm:<svc>         the app's traces reach the intake (app -> agent 8126/tcp -> intake)
    app-dogstatsd:<svc>   the app's DogStatsD metrics reach the intake (app -> agent 8125/udp)

`static_findings(taskdef)` turns a task definition file into findings on the same hops, with the
messages of `lab.ecs.diagnose` (the live walk prints them as the fix when they apply).
"""

from __future__ import annotations

import json
import socket
import time
from dataclasses import asdict, dataclass, field

from lab.ecs.diagnose import Finding, agent_findings, secrets_findings
from lab.sandbox.target import APP_METRIC, DATA_ROUTES, LabTarget, container, get_env, http_get, instance_url
from lab.stack import AGENT_SERVICE
from lab.tasks import is_agent_image, is_fips_proxy_image

_TRUE = {"1", "true", "yes", "on"}

# Which hop each static finding of lab.ecs.diagnose (and of this module) concerns.
FINDING_HOPS = {
    "apm_host_port": "app-apm",
    "awsvpc_agent": "app-agent-host",
    "dogstatsd_host_port": "app-dogstatsd",
    "dogstatsd_non_local": "app-dogstatsd",
    "apm_non_local": "app-apm",
    "apm_disabled": "app-apm",
    "fips_bridge": "fips",
    "fips_no_proxy": "fips",
    "secret_missing": "agent-task",
    "execution_role_missing": "agent-task",
    "health_check": "agent-health",
    "process_disabled": "agent-intake:processes",
    "process_mounts": "agent-intake:processes",
    "docker_socket": "agent-intake:processes",
    "api_key": "agent-task",
}


@dataclass
class Hop:
    hop: str
    ok: bool
    evidence: str = ""
    fix: str = ""
    skipped: bool = False

    def line(self) -> str:
        if self.skipped:
            return f"  --  {self.hop}: not checked ({self.evidence})"
        if self.ok:
            return f"  OK  {self.hop}" + (f": {self.evidence}" if self.evidence else "")
        return f"FAIL  {self.hop}: {self.evidence}" + (f"\n      fix: {self.fix}" if self.fix else "")


@dataclass
class Report:
    hops: list[Hop] = field(default_factory=list)
    took_s: float = 0.0

    @property
    def ok(self) -> bool:
        return all(h.ok or h.skipped for h in self.hops)

    @property
    def first_broken(self) -> Hop | None:
        return next((h for h in self.hops if not h.ok and not h.skipped), None)

    def text(self) -> str:
        lines = [h.line() for h in self.hops]
        broken = self.first_broken
        lines.append(f"first broken hop: {broken.hop}" if broken else "every hop is OK")
        return "\n".join(lines)

    def as_dict(self) -> dict:
        broken = self.first_broken
        return {
            "ok": self.ok,
            "first_broken": broken.hop if broken else None,
            "took_s": round(self.took_s, 2),
            "hops": [asdict(h) for h in self.hops],
        }


# -- waiting derived from the agent's intervals --------------------------------------------------------


@dataclass(frozen=True)
class FlowWait:
    """How long data may take to reach the intake, from the agent's flush intervals (docs/agent.md):
    three intervals plus slack, as a flush can just have passed and the first process run sends
    nothing."""

    traces: float
    metrics: float
    processes: float

    @classmethod
    def for_profile(cls, profile: str | None) -> FlowWait:
        if (profile or "fast").strip().lower() == "real-timing":
            # traces every 5 s; metrics 15 s flushes of closed 10 s buckets; process checks 10 s.
            return cls(traces=3 * 5 + 5, metrics=2 * 15 + 10 + 5, processes=3 * 10 + 5)
        # The emulated agent's default: 1 s flushes, 2 s process checks.
        return cls(traces=3 * 1 + 5, metrics=3 * 1 + 5, processes=3 * 2 + 5)


def _agent_taskdef(target: LabTarget) -> dict | None:
    try:
        return target.service_task_definition(AGENT_SERVICE)
    except Exception:  # noqa: BLE001 - no agent service is itself the finding
        return None


def _flag(c: dict | None, name: str, default: bool) -> bool:
    value = get_env(c, name) if c else None
    return default if value is None else value.strip().lower() in _TRUE


def _fix(findings: list[Finding], hop: str, default: str) -> str:
    hop_kind = hop.split(":", 1)[0] if not hop.startswith("agent-intake") else hop
    msgs = [str(f) for f in findings if FINDING_HOPS.get(f.code) in (hop_kind, hop)]
    return "; ".join(msgs) or default


def _tcp_open(host: str, port: int, timeout: float = 1.0) -> str | None:
    """None when something accepts a TCP connection at host:port, else why not."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return None
    except OSError as exc:
        return exc.strerror or str(exc)


def _observe(
    target: LabTarget,
    wait: FlowWait,
    want_processes: bool,
    services: list[str],
    deadline_s: float | None = None,
) -> dict:
    """Drive the apps with a user's traffic and watch the intake until every expected kind of data
    arrived or the waits ran out. Returns what was seen since the start."""
    intake = target.intake
    cursor = target.cursor()
    stats = intake.routestats()
    before = {r: s.get("accepted", 0) for r, s in stats.items()}
    # Payloads the intake answered with an error and did not keep (the agent's sends that failed).
    errors_before = {r: s.get("answered_not_stored", 0) for r, s in stats.items()}
    errors: dict[str, int] = {}
    limit = deadline_s or max(wait.traces, wait.metrics, wait.processes if want_processes else 0)
    t0 = time.monotonic()
    spans: dict[str, int] = {}
    metrics: dict[str, int] = {}
    routes: dict[str, int] = {}
    from lab.fakes.intake.client import IntakeClient

    c_traces = c_series = cursor
    while True:
        target.poke_apps(requests=1)
        page = intake.payloads_page(DATA_ROUTES["traces"], since=c_traces)
        c_traces = page.get("next_since") or c_traces
        for s in IntakeClient._spans(page["payloads"], {}):
            spans[s["service"]] = spans.get(s["service"], 0) + 1
        page = intake.payloads_page(DATA_ROUTES["series"], since=c_series, metric=APP_METRIC)
        c_series = page.get("next_since") or c_series
        for m in (series for item in page["payloads"] for series in item["data"]):
            svc = next((t.split(":", 1)[1] for t in m.get("tags") or [] if t.startswith("service:")), "")
            metrics[svc] = metrics.get(svc, 0) + 1
        stats = intake.routestats()
        routes = {r: st.get("accepted", 0) - before.get(r, 0) for r, st in stats.items()}
        errors = {r: st.get("answered_not_stored", 0) - errors_before.get(r, 0) for r, st in stats.items()}
        done = (
            all(spans.get(s) for s in services)
            and all(metrics.get(s) for s in services)
            and routes.get(DATA_ROUTES["series"], 0) > 0
            and routes.get(DATA_ROUTES["check runs"], 0) > 0
            and (not want_processes or routes.get(DATA_ROUTES["processes"], 0) > 0)
        )
        if done or time.monotonic() - t0 > limit:
            break
        time.sleep(0.5)
    return {"spans": spans, "metrics": metrics, "routes": routes, "errors": errors,
            "waited_s": time.monotonic() - t0}


def _service_events(target: LabTarget, service: str) -> list[dict]:
    try:
        described = target.ecs.describe_services(cluster=target.cluster, services=[service])["services"]
    except Exception:  # noqa: BLE001 - the events only add to the evidence
        return []
    return (described[0].get("events") or []) if described else []


def _settled_health(target: LabTarget, agent_c: dict) -> list[tuple[str, str]]:
    """The agent containers' ECS health, waiting while a new task's first checks have not run yet
    (UNKNOWN) for as long as ECS itself would: the start period plus `retries` intervals."""
    hc = agent_c.get("healthCheck") or {}
    limit = min(
        120.0,
        float(hc.get("startPeriod", 0)) + float(hc.get("interval", 30)) * (int(hc.get("retries", 3)) + 1) + 5,
    )
    deadline = time.monotonic() + limit
    while True:
        containers = target.agent_containers()
        health = [(arn, h) for arn, _status, h in containers]
        # Only a running container's check can still decide: while no agent task runs and the last
        # one stopped before it ever ran (a secret ECS cannot fetch), the next will fail too and
        # there is nothing to wait for. This waited out the whole limit (80 s) for tasks that were
        # only ever PROVISIONING, then STOPPED. A replacement of an UNHEALTHY task is waited for.
        running = any(status == "RUNNING" for _arn, status, _h in containers)
        if hc and not running and target.failing_to_start(AGENT_SERVICE):
            return health
        # UNHEALTHY is waited on too: on a loaded machine one slow `agent health` run flips it, and
        # ECS turns it HEALTHY again at the next passing check.
        if not hc or (health and all(h == "HEALTHY" for _a, h in health)) or time.monotonic() > deadline:
            return health
        time.sleep(0.5)


def walk(target: LabTarget, *, wait: FlowWait | None = None) -> Report:
    """The live walk (see the module docstring)."""
    t0 = time.monotonic()
    target.refresh()
    report = Report()
    hops = report.hops
    td = _agent_taskdef(target)
    agent_c = None
    if td is not None:
        try:
            agent_c = container(td, agent=True)
        except Exception:  # noqa: BLE001 - a definition without the agent image is the finding below
            agent_c = None
    findings = agent_findings(td) + _extra_findings(td) if td else []
    wait = wait or FlowWait.for_profile(get_env(agent_c, "LAB_AGENT_PROFILE") if agent_c else None)
    instances = target.instances()

    # agent-task
    running = [t for t in target.tasks(AGENT_SERVICE) if t.get("lastStatus") == "RUNNING"] if td else []
    if td is None or agent_c is None:
        hops.append(
            Hop(
                "agent-task",
                False,
                "the cluster has no datadog-agent service running the agent image",
                "create the DAEMON service from the agent task definition",
            )
        )
    elif len(running) < len(instances):
        reasons = target.stopped_reasons(AGENT_SERVICE)
        secret = [f for r in reasons[-3:] for f in secrets_findings(r)]
        evidence = f"{len(running)}/{len(instances)} instance(s) run an agent task" + (
            f"; last stopped reason: {reasons[-1]}" if reasons else ""
        )
        hops.append(
            Hop(
                "agent-task",
                False,
                evidence,
                str(secret[0])
                if secret
                else _fix(findings, "agent-task", "see `aws ecs describe-services` events"),
            )
        )
    else:
        hops.append(
            Hop("agent-task", True, f"{len(running)} agent task(s) RUNNING ({td['family']}:{td['revision']})")
        )

    # agent-health
    health = _settled_health(target, agent_c) if td and agent_c else []
    bad = [h for _arn, h in health if h != "HEALTHY"]
    if not health:
        hops.append(Hop("agent-health", False, "no agent container to report health", "fix agent-task first"))
    elif bad:
        # ECS's scheduler stops an UNHEALTHY service task and starts another, which is UNKNOWN until
        # its own check decides: the service's events say what happened to the ones before it.
        replaced = [e["message"] for e in _service_events(target, AGENT_SERVICE)
                    if "failed container health checks" in e.get("message", "")][:1]
        hops.append(
            Hop(
                "agent-health",
                False,
                f"ECS reports the agent container {', '.join(sorted(set(bad)))}"
                + (f"; an earlier one was UNHEALTHY and replaced: {replaced[0]}" if replaced else ""),
                _fix(findings, "agent-health", 'the health check must be ["CMD-SHELL", "agent health"]'),
            )
        )
    else:
        hops.append(Hop("agent-health", True, f"{len(health)} agent container(s) HEALTHY"))

    want_processes = "processes" in target.features
    apps = target.apps()
    services = [a.service for a in apps.values()]
    seen = _observe(target, wait, want_processes, services)
    routes = seen["routes"]

    # fips
    fips = _flag(agent_c, "DD_FIPS_ENABLED", False)
    if fips:
        proxies = [c for c in td["containerDefinitions"] if is_fips_proxy_image(c.get("image", ""))]
        flowing = routes.get(DATA_ROUTES["series"], 0) > 0
        if not proxies or not flowing:
            hops.append(
                Hop(
                    "fips",
                    False,
                    (
                        "DD_FIPS_ENABLED=true and no FIPS proxy container in the task"
                        if not proxies
                        else "no data passed the FIPS proxy"
                    )
                    + f" in {seen['waited_s']:.0f}s",
                    _fix(
                        findings,
                        "fips",
                        "run the datadog/fips-proxy sidecar in the agent's "
                        "network namespace (host mode), or set DD_FIPS_ENABLED=false",
                    ),
                )
            )
        else:
            hops.append(Hop("fips", True, "data reaches the intake through the FIPS proxy"))

    # agent-intake per data type
    kinds = ["check runs", "series"] + (["processes"] if want_processes else [])
    for kind in kinds:
        n = routes.get(DATA_ROUTES[kind], 0)
        hop = f"agent-intake:{kind.replace(' ', '-')}"
        if n:
            hops.append(Hop(hop, True, f"{n} payload(s) in {seen['waited_s']:.0f}s"))
            continue
        default = "check the agent's logs (`ecs-lab logs`) and the intake redirects"
        if (
            kind == "processes"
            and not _flag(agent_c, "DD_PROCESS_AGENT_ENABLED", False)
            and not _flag(agent_c, "DD_PROCESS_CONFIG_PROCESS_COLLECTION_ENABLED", False)
        ):
            default = "set DD_PROCESS_AGENT_ENABLED=true in the agent's environment"
        rejected = target.intake.rejected(DATA_ROUTES[kind])[-1:]
        why = f"; the intake refused one: {rejected[0].get('reason')}" if rejected else ""
        if rejected and "DD_SITE" in (rejected[0].get("reason") or ""):
            default = "set DD_SITE to the site of your Datadog organization (the API key is valid only there)"
        if seen["errors"].get(DATA_ROUTES[kind]):
            why += (
                f"; the intake answered {seen['errors'][DATA_ROUTES[kind]]} of the agent's sends "
                "with an error and kept none (the agent's data is sent, Datadog's side refuses it)"
            )
        hops.append(
            Hop(
                hop,
                False,
                f"no {kind} payload reached the intake in {seen['waited_s']:.0f}s{why}",
                _fix(findings, hop, default),
            )
        )

    # metadata endpoints
    imds_policy = {}
    for inst in instances:
        url = instance_url(inst, "imds")
        if not url:
            continue
        v1, body1 = http_get(url + "/latest/meta-data/local-ipv4")
        tok_code, token = http_get(
            url + "/latest/api/token", method="PUT", headers={"X-aws-ec2-metadata-token-ttl-seconds": "60"}
        )
        v2, body2 = (
            http_get(url + "/latest/meta-data/local-ipv4", headers={"X-aws-ec2-metadata-token": token})
            if tok_code == 200
            else (0, "")
        )
        imds_policy[inst["index"]] = {"v1": v1, "v2": v2}
        if v1 != 200 and v2 != 200:
            hops.append(
                Hop(
                    "imds",
                    False,
                    f"instance {inst['index']}: local-ipv4 answered v1 {v1 or body1}, v2 {v2 or body2}",
                    "enable the instance metadata endpoint",
                )
            )
            break
    else:
        notes = [
            f"instance {i}: tokens required (IMDSv1 gets {p['v1']})"
            for i, p in imds_policy.items()
            if p["v1"] != 200
        ]
        hops.append(Hop("imds", True, "; ".join(notes) or "local-ipv4 answers (v1 and v2)"))
    for inst in instances:
        endpoint = instance_url(inst, "ecs")
        if not endpoint:
            continue
        code, body = http_get(endpoint + "/v1/metadata")
        if code != 200:
            hops.append(
                Hop(
                    "ecs-metadata",
                    False,
                    f"instance {inst['index']}: /v1/metadata -> {code or body}",
                    "the ECS agent's introspection API (51678) must answer on the instance",
                )
            )
            break
    else:
        hops.append(Hop("ecs-metadata", True, "ECS agent introspection answers"))

    # the apps
    # The app hops need the agent running and sending; its ECS health status is reported above.
    agent_ok = all(h.ok for h in hops if h.hop.startswith(("agent-task", "agent-intake", "fips")))
    private = {i["index"]: i["private_ip"] for i in instances}
    apm_port = int(get_env(agent_c, "DD_APM_RECEIVER_PORT") or 8126) if agent_c else 8126
    for v, app in apps.items():
        svc = app.service
        code, body = http_get(app.url + "/") if app.url else (0, "no address")
        agent_host = None
        if code == 200:
            agent_host = json.loads(body).get("agent_host")
        expected = private.get(app.instance)
        if agent_host != expected:
            policy = imds_policy.get(app.instance, {})
            hint = ""
            if policy.get("v1") == 401 and v == "imdsv1":
                hint = (
                    "; the instance requires IMDSv2 tokens and the app's entryPoint uses the IMDSv1 line: "
                    "use the token flow (PUT /latest/api/token) as the imdsv2 task definition does"
                )
            elif v == "imdsv2":
                hint = _bridge_token_hint(instances, app.instance)
            elif v == "metadata_file":
                hint = _metadata_file_hint(instances, app.instance)
            hops.append(
                Hop(
                    f"app-agent-host:{svc}",
                    False,
                    f"the app resolved DD_AGENT_HOST={agent_host!r}, its instance's private IP is "
                    f"{expected}" + (f" (app answered {code or body})" if code != 200 else "") + hint,
                    "DD_AGENT_HOST must be the instance's private IP (IMDS local-ipv4 or the "
                    "metadata file's HostPrivateIPv4Address), never localhost: in bridge mode "
                    "localhost is the app's own container",
                )
            )
            continue
        hops.append(Hop(f"app-agent-host:{svc}", True, f"DD_AGENT_HOST={agent_host}"))
        if not agent_ok:
            hops.append(Hop(f"app-apm:{svc}", False, "an agent hop above is broken", skipped=True))
            continue
        if seen["spans"].get(svc):
            hops.append(Hop(f"app-apm:{svc}", True, f"{seen['spans'][svc]} span(s) reached the intake"))
        else:
            refused = _tcp_open(agent_host, apm_port)
            evidence = f"no span of service {svc} reached the intake in {seen['waited_s']:.0f}s"
            evidence += (
                f"; TCP {agent_host}:{apm_port}: {refused}"
                if refused
                else (f"; {agent_host}:{apm_port} accepts connections")
            )
            default = (
                "set DD_APM_ENABLED=true and DD_APM_NON_LOCAL_TRAFFIC=true in the agent's environment"
                if not refused
                else f"publish hostPort {apm_port}/tcp on the agent container"
            )
            hops.append(Hop(f"app-apm:{svc}", False, evidence, _fix(findings, "app-apm", default)))
        if seen["metrics"].get(svc):
            hops.append(Hop(f"app-dogstatsd:{svc}", True, f"{seen['metrics'][svc]} {APP_METRIC} series"))
        else:
            hops.append(
                Hop(
                    f"app-dogstatsd:{svc}",
                    False,
                    f"no {APP_METRIC} series of service {svc} reached the intake in "
                    f"{seen['waited_s']:.0f}s (DogStatsD is UDP: the app sees no error)",
                    _fix(
                        findings,
                        "app-dogstatsd",
                        "publish hostPort 8125/udp and set DD_DOGSTATSD_NON_LOCAL_TRAFFIC=true",
                    ),
                )
            )
    report.took_s = time.monotonic() - t0
    return report


def _instance(instances: list[dict], index: int) -> dict:
    return next((i for i in instances if i.get("index") == index), {})


def _bridge_token_hint(instances: list[dict], index: int) -> str:
    """Why an IMDSv2 app in bridge mode got no token: ask for one as such a container does (one hop
    further than the instance); no answer there while the instance itself gets one is the hop limit."""
    url = instance_url(_instance(instances, index), "imds_bridge")
    if not url:
        return ""
    code, _token = http_get(
        url + "/latest/api/token", method="PUT", headers={"X-aws-ec2-metadata-token-ttl-seconds": "60"}
    )
    if code != 0:
        return ""
    return (
        "; a token PUT from a bridge-mode container gets no answer: the instance's "
        "HttpPutResponseHopLimit is 1 and bridge mode is one hop further (set it to 2: aws ec2 "
        "modify-instance-metadata-options --http-put-response-hop-limit 2), then redeploy the app"
    )


def _metadata_file_hint(instances: list[dict], index: int) -> str:
    """Why an app that reads the container metadata file found no host: is the file written at all?"""
    endpoint = instance_url(_instance(instances, index), "ecs")
    if not endpoint:
        return ""
    code, body = http_get(endpoint + "/ecs-lab/config")
    try:
        enabled = json.loads(body).get("ECS_ENABLE_CONTAINER_METADATA") if code == 200 else None
    except ValueError:
        enabled = None
    if enabled != "false":
        return ""
    return (
        "; the instance's ECS agent runs without ECS_ENABLE_CONTAINER_METADATA=true, so it writes no "
        "metadata file (ECS_CONTAINER_METADATA_FILE is unset): add it to /etc/ecs/ecs.config, restart "
        "the ECS agent, then redeploy the app"
    )


# -- static --------------------------------------------------------------------------------------------


def _extra_findings(td: dict) -> list[Finding]:
    """What lab.ecs.diagnose does not cover: health check, API key, process collection's mounts,
    APM's own switches."""
    out: list[Finding] = []
    volumes = {v.get("name"): (v.get("host") or {}).get("sourcePath", "") for v in td.get("volumes") or []}
    for i, c in enumerate(td.get("containerDefinitions") or []):
        if not is_agent_image(c.get("image", "")):
            continue
        where = f"containerDefinitions[{i}] ({c.get('name')})"
        env = {e["name"]: e.get("value", "") for e in c.get("environment") or []}
        secrets = {s["name"] for s in c.get("secrets") or []}
        hc = (c.get("healthCheck") or {}).get("command") or []
        if not hc or "agent health" not in " ".join(hc):
            out.append(
                Finding(
                    "health_check",
                    f"{where}.healthCheck",
                    f"the health check is {hc or 'missing'}: ECS cannot tell a broken agent; "
                    'use ["CMD-SHELL", "agent health"] (interval 30, timeout 5, retries 3, '
                    "startPeriod 15)",
                )
            )
        if "DD_API_KEY" not in env and "DD_API_KEY" not in secrets:
            out.append(
                Finding(
                    "api_key",
                    f"{where}.environment",
                    "no DD_API_KEY (environment or secrets): the agent does not start",
                )
            )
        if env.get("DD_APM_ENABLED", "true").strip().lower() not in _TRUE:
            out.append(
                Finding(
                    "apm_disabled",
                    f"{where}.environment",
                    "DD_APM_ENABLED is false: the trace-agent does not run and traces are refused. "
                    "Set DD_APM_ENABLED=true",
                )
            )
        elif env.get("DD_APM_NON_LOCAL_TRAFFIC", "true").strip().lower() not in _TRUE:
            # The agent image sets it true; only an explicit false refuses other containers.
            out.append(
                Finding(
                    "apm_non_local",
                    f"{where}.environment",
                    "DD_APM_NON_LOCAL_TRAFFIC is not true: the trace-agent accepts only its own "
                    "container's traffic. Set DD_APM_NON_LOCAL_TRAFFIC=true",
                )
            )
        procs = (
            (
                env.get("DD_PROCESS_AGENT_ENABLED", "")
                or env.get("DD_PROCESS_CONFIG_PROCESS_COLLECTION_ENABLED", "")
            )
            .strip()
            .lower()
        )
        mounted = {
            m.get("containerPath"): volumes.get(m.get("sourceVolume"), "") for m in c.get("mountPoints") or []
        }
        if procs and procs not in _TRUE:
            out.append(
                Finding(
                    "process_disabled",
                    f"{where}.environment",
                    "process collection is off (DD_PROCESS_AGENT_ENABLED is not true): no process "
                    "payloads. Set DD_PROCESS_AGENT_ENABLED=true",
                )
            )
        elif procs in _TRUE and "/host/proc" not in mounted:
            out.append(
                Finding(
                    "process_mounts",
                    f"{where}.mountPoints",
                    "process collection is on but the host's /proc is not mounted at /host/proc "
                    "(read only): the agent sees only its own container's processes",
                )
            )
        if "/var/run/docker.sock" not in mounted:
            out.append(
                Finding(
                    "docker_socket",
                    f"{where}.mountPoints",
                    "/var/run/docker.sock is not mounted (read only): the agent cannot find the "
                    "app containers to tag their data",
                )
            )
    return out


def static_findings(td: dict) -> list[tuple[str, Finding]]:
    """(hop, finding) for a task definition file, on the live walk's hop names."""
    if "taskDefinition" in td and "containerDefinitions" not in td:
        td = td["taskDefinition"]  # the output of `aws ecs describe-task-definition`
    if not isinstance(td.get("containerDefinitions"), list) or not td["containerDefinitions"]:
        raise ValueError("not a task definition: no containerDefinitions list")
    if not any(is_agent_image(c.get("image", "")) for c in td["containerDefinitions"]):
        raise ValueError("no container of this task definition runs the Datadog agent image")
    found = agent_findings(td) + _extra_findings(td)
    return [(FINDING_HOPS.get(f.code, "agent-task"), f) for f in found]
