"""`ecs-lab up | status | logs | down | run | list`: the lab's lifecycle from a terminal.

`up` runs the supervisor (the owner of every fake and process) in the foreground, Ctrl-C stops it;
`up --detach` runs it as a background process and returns once the lab is ready. Either way the
state file (`.lab/state.json`, or `$LAB_STATE`) tells `status`, `logs`, `down`, `run` and the pytest
plugin where everything is.

`--name NAME` (or `LAB_NAME`) on every command picks a named lab: labs side by side, each on a
loopback subnet it claims (lab/subnet_claims.py), with its shared servers on free ports of that
subnet, its own home `.lab/labs/NAME/` and its own cluster `ecs-lab-NAME` (docs/side_by_side.md).
`ecs-lab list` shows every lab running on the machine.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import click

from lab.stack import APP_VARIANTS, DEFAULT_FEATURES, FEATURES, Ports, Stack
from lab.state_file import (
    lab_home,
    lab_name,
    name_option,
    read_state,
    stack_from_json,
    stack_to_json,
    state_path,
)


def _console(stderr: bool = True):
    from rich.console import Console

    return Console(stderr=stderr, log_path=False)


def _parse_env(pairs: tuple[str, ...]) -> dict[str, str]:
    env = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise click.BadParameter(f"{pair!r} is not KEY=VALUE", param_hint="--agent-env")
        env[key] = value
    return env


def build_stack(instances: int, features: tuple[str, ...], agent_image: str | None,
                agent_env: tuple[str, ...], apps: tuple[str, ...], subnet: str | None,
                intake_url: str | None = None, control_plane_port: int | None = None,
                name: str | None = None, ready_timeout: float | None = None,
                external_instances: int = 0) -> Stack:
    chosen = set(DEFAULT_FEATURES)
    for f in features:
        if f.startswith(("no-", "-")):
            chosen.discard(f.removeprefix("no-").removeprefix("-"))
        else:
            chosen.add(f)
    kwargs: dict = {"instances": instances, "features": frozenset(chosen), "agent_env": _parse_env(agent_env),
                    "run_dir": lab_home() / "run", "external_instances": external_instances}
    if agent_image:
        kwargs["agent_image"] = agent_image
    if apps:
        kwargs["apps"] = () if apps == ("none",) else tuple(apps)
    if subnet:
        # A lab on another subnet keeps its shared servers (intake, task metadata) there too, so
        # two labs never fight over 127.0.0.1:8091.
        kwargs["subnet"] = subnet
        kwargs["services_host"] = f"{subnet}.0.1"
    if intake_url:
        kwargs["external_intake_url"] = intake_url
    if ready_timeout is not None:
        kwargs["ready_timeout"] = ready_timeout
    if name:
        # A named lab runs beside others: free ports (recorded in its state) for its shared servers,
        # on its own subnet's 127.X.0.1, and a cluster of its own.
        kwargs.update(name=name, cluster=f"ecs-lab-{name}", ports=Ports.ephemeral())
        if control_plane_port is not None:
            kwargs["ports"].control_plane = control_plane_port
    elif control_plane_port is not None:
        kwargs["ports"] = Ports(control_plane=control_plane_port)
    try:
        return Stack(**kwargs)
    except ValueError as exc:
        raise click.UsageError(str(exc)) from None


def print_status(state: dict, console=None) -> None:
    from rich.table import Table

    console = console or _console()
    named = f"lab {state['name']!r}, " if state.get("name") else ""
    table = Table(title=f"ecs-lab ({named}{state.get('backend', 'local')}, pid {state.get('pid')})")
    table.add_column("endpoint")
    table.add_column("address")
    for key in ("intake_url", "task_metadata_url", "egress_proxy_url", "dashboard_url"):
        if state.get(key):
            table.add_row(key, state[key])
    if state.get("agent_runs_as"):
        table.add_row("agent images run as", state["agent_runs_as"])
    for problem in state.get("problems") or []:
        table.add_row("[red]problem[/]", problem)
    for inst in state.get("instances", []):
        n = inst["index"]
        kind = " ECS Anywhere" if inst.get("launch_type") == "EXTERNAL" else ""
        table.add_row(f"instance {n}", f"{inst['instance_id']} ({inst['private_ip']}){kind}")
        for key in ("imds_url", "ecs_endpoint", "apm_url", "dogstatsd", "fips_proxy"):
            if inst.get(key):
                table.add_row(f"  {key}", inst[key])
        agent = inst.get("agent", {})
        table.add_row("  agent", f"pid {agent.get('pid')} {agent.get('status')} health={agent.get('health')}")
    for variant, app in state.get("apps", {}).items():
        table.add_row(f"app {app['service']}",
                      f"{app.get('url') or ''} pid {app.get('pid')} {app.get('status')} ({variant})")
    if state.get("control_plane"):
        # Where `aws --endpoint-url` / `ecs-lab deploy` go, and what the cluster runs.
        table.add_row("control_plane", state["control_plane"])
        table.add_row("  cluster", state.get("cluster", ""))
        for index, arn in (state.get("container_instances") or {}).items():
            table.add_row(f"  container instance {index}", arn or "(not registered)")
        for arn, address in (state.get("fargate_tasks") or {}).items():
            # A Fargate task's own address (its ENI on the local backend): where its ports listen.
            table.add_row(f"  fargate task {arn.rsplit('/', 1)[-1]}", address)
        for svc in state.get("services") or []:
            table.add_row(f"  service {svc['name']}",
                          f"{svc['scheduling_strategy']} {svc['running']}/{svc['desired']} running"
                          + (f", {svc['pending']} pending" if svc.get("pending") else "")
                          + f" ({svc['task_definition'].rsplit('/', 1)[-1]})")
    console.print(table)


@click.command()
@click.option("--detach", "-d", is_flag=True, help="Start in the background and return once ready.")
@click.option("--instances", "-n", default=1, show_default=True, type=click.IntRange(1, 200),
              help="Number of emulated EC2 container instances.")
@click.option("--external-instances", default=0, show_default=True, type=click.IntRange(0, 50),
              help="ECS Anywhere hosts after the EC2 ones (docs/ecs_anywhere.md; docker: 8 hosts in all).")
@click.option("--backend", type=click.Choice(["local", "docker"]), default=lambda: os.environ.get(
    "LAB_BACKEND", "local"), show_default="local", help="Processes on loopback, or docker containers.")
@click.option("--feature", "-f", "features", multiple=True,
              help=f"Add a feature ({', '.join(FEATURES)}); prefix with no- to remove a default one.")
@click.option("--agent-image", default=None, help="Agent image (docker) / agent image name (local).")
@click.option("--agent-env", "-e", multiple=True, metavar="KEY=VALUE", help="Extra agent environment.")
@click.option("--app", "apps", multiple=True, type=click.Choice([*APP_VARIANTS, "none"]),
              help="Sample app variants to run (default: all).")
@click.option("--subnet", default=None,
              help="First two octets of every lab address (default 127.0: instances on 127.0.1.N).")
@click.option("--intake-url", default=None,
              help="Send agent data to this intake instead of the embedded one (e.g. datadog/fakeintake).")
@click.option("--control-plane-port", type=click.IntRange(0, 65535), default=None,
              help="Port of the ECS control plane (default 4566; 0 picks a free one).")
@click.option("--ui", is_flag=True, help="Serve the live dashboard on loopback (docs/sandbox.md).")
@click.option("--ready-timeout", type=click.FloatRange(1, 3600), default=None,
              help="Seconds each container may take to be ready (default 20, or LAB_READY_TIMEOUT; more "
                   "on a loaded machine).")
@name_option
def up(detach: bool, instances: int, external_instances: int, backend: str, features: tuple[str, ...],
       agent_image: str | None, agent_env: tuple[str, ...], apps: tuple[str, ...], subnet: str | None,
       intake_url: str | None, control_plane_port: int | None, ui: bool, ready_timeout: float | None) -> None:
    """Start the ECS world: fakes, the ECS control plane on :4566 with every instance registered,
    the agent as a DAEMON service (one per instance) and the sample apps as services."""
    existing = read_state()
    name = lab_name()
    if existing:
        which, down = (f"lab {name!r}", f"ecs-lab down --name {name}") if name else ("a lab", "ecs-lab down")
        raise click.ClickException(f"{which} is already running (pid {existing['pid']}, state "
                                   f"{state_path()}); `{down}` stops it")
    claim = None
    if backend == "local":
        # The lab's loopback subnet, claimed machine-wide before anything binds there: the unnamed
        # lab's 127.0 (or --subnet), a named lab's --subnet or a free 127.X.
        from lab.subnet_claims import SubnetClaimError, claim_subnet

        try:
            claim = claim_subnet(subnet if (subnet or name) else "127.0", name=name,
                                 state_file=str(state_path()))
        except (SubnetClaimError, ValueError) as exc:
            raise click.ClickException(str(exc)) from None
        subnet = subnet or (claim.subnet if name else None)
    try:
        stack = build_stack(instances, features, agent_image, agent_env, apps, subnet, intake_url,
                            control_plane_port, name=name, ready_timeout=ready_timeout,
                            external_instances=external_instances)
    except BaseException:
        if claim is not None:
            claim.release()
        raise
    console = _console()
    if ui:
        os.environ["LAB_UI"] = "1"  # read by the supervisor, in this process or the detached one
    if detach:
        try:
            _up_detached(stack, backend, console, claim)
        finally:
            if claim is not None:
                claim.release()  # this process's copy: the supervisor holds the claim now
        return
    from lab.supervisor import serve

    t0 = time.monotonic()
    with console.status("starting the lab...") as spinner:
        def progress(msg: str) -> None:
            spinner.update(msg)
            console.log(msg)

        def on_ready(state: dict) -> None:
            spinner.stop()
            print_status(state)
            console.print(f"[green]ready in {time.monotonic() - t0:.1f}s[/]; Ctrl-C stops everything "
                          f"(logs: ecs-lab logs -f)")

        def on_error(msg: str) -> None:
            spinner.stop()
            click.echo(f"Error: {msg}", err=True)

        code = serve(stack, progress=progress, on_ready=on_ready, backend_name=backend, on_error=on_error,
                     subnet_claim=claim)
    sys.exit(code)


def _up_detached(stack: Stack, backend: str, console, claim=None) -> None:
    path = state_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.unlink(missing_ok=True)
    log_path = Path(stack.run_dir) / "supervisor.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "ab") as log:
        argv = [sys.executable, "-m", "lab.supervisor", stack_to_json(stack), backend]
        env = {**os.environ, "LAB_STATE": str(path)}
        pass_fds: tuple[int, ...] = ()
        if claim is not None:
            # The supervisor inherits the locked claim: the subnet stays claimed with no gap.
            pass_fds = (claim.inheritable_fd(),)
            env["LAB_SUBNET_CLAIM_FD"] = str(pass_fds[0])
        proc = subprocess.Popen(argv, pass_fds=pass_fds,
                                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                start_new_session=True, env=env)
    t0 = time.monotonic()
    # On docker a first run builds the images (base about 35 s, lab image about 2 min cold) and may
    # queue behind another docker lab on the engine: allow for it, and show what it is doing.
    timeout = float(os.environ.get("LAB_UP_TIMEOUT", 0)) or (
        stack.ready_timeout * 3 + (900 if backend == "docker" else 0))
    shown_at = 0.0
    with console.status("starting the lab in the background...") as shown:
        while True:
            if time.monotonic() - shown_at > 0.5:
                from lab.backends.process import tail_file

                shown_at = time.monotonic()
                last = tail_file(log_path, 1).strip().splitlines()
                if last:
                    shown.update(f"starting the lab in the background: {last[-1][-100:]}")
            try:
                state = json.loads(path.read_text())
            except (OSError, ValueError):
                state = None
            if state and state.get("pid") == proc.pid:
                if state.get("ready"):
                    break
                if "error" in state:
                    proc.wait(30)
                    raise click.ClickException(f"the lab failed to start: {state['error']}\n"
                                               f"(log: {log_path})")
            if proc.poll() is not None:
                from lab.backends.process import tail_file

                raise click.ClickException(f"the lab supervisor exited with {proc.returncode}:\n"
                                           f"{tail_file(log_path, 30)}")
            if time.monotonic() - t0 > timeout:
                proc.send_signal(signal.SIGTERM)
                raise click.ClickException(f"the lab was not ready in {timeout:.0f}s "
                                           f"(log: {log_path}; LAB_UP_TIMEOUT allows longer)")
            time.sleep(0.05)
    print_status(state)
    down = f"ecs-lab down --name {stack.name}" if stack.name else "ecs-lab down"
    console.print(f"[green]ready in {time.monotonic() - t0:.1f}s[/] (supervisor pid {proc.pid}); "
                  f"`{down}` stops it")


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.option("--all", "everything", is_flag=True,
              help="Every lab running on this machine (as `ecs-lab list`).")
@name_option
def status(as_json: bool, everything: bool) -> None:
    """Show the running lab's endpoints, agents and apps."""
    if everything:
        _print_labs(as_json)
        return
    state = read_state()
    if as_json:
        click.echo(json.dumps(state if state else {"running": False}, indent=2))
        if not state:
            sys.exit(1)
        return
    if not state:
        raise click.ClickException(f"no lab is running (no live state at {state_path()}); `ecs-lab up`")
    print_status(state, _console(stderr=False))


def running_labs() -> list[dict]:
    """Every lab holding a subnet claim on this machine (lab/subnet_claims.py), whoever started it
    (`ecs-lab up`, a pytest run), with what its state file says when it has one."""
    from lab.subnet_claims import held_claims

    labs = []
    for record in held_claims():
        state = read_state(Path(record["state_file"])) if record.get("state_file") else None
        state = state or {}
        labs.append({"name": record.get("name"), "subnet": record["subnet"], "pid": record.get("pid"),
                     "holder": record.get("holder") or "ecs-lab", "state_file": record.get("state_file"),
                     "ready": state.get("ready"), "backend": state.get("backend"),
                     "cluster": state.get("cluster") or record.get("cluster"),
                     **{k: state.get(k) for k in ("intake_url", "control_plane", "dashboard_url",
                                                  "task_metadata_url", "egress_proxy_url")}})
    return labs


def _print_labs(as_json: bool) -> None:
    labs = running_labs()
    if as_json:
        click.echo(json.dumps(labs, indent=2))
        return
    from rich.table import Table

    table = Table(title="labs on this machine")
    for column in ("name", "subnet", "pid", "cluster", "intake", "control plane", "dashboard"):
        table.add_column(column)
    for lab in labs:
        name = lab["name"] or ("(unnamed)" if lab["holder"] == "ecs-lab" else f"({lab['holder']})")
        table.add_row(name, lab["subnet"], str(lab["pid"]), lab["cluster"] or "", lab["intake_url"] or "",
                      lab["control_plane"] or "", lab["dashboard_url"] or "")
    _console(stderr=False).print(table)


@click.command("list")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def list_labs(as_json: bool) -> None:
    """List the labs running on this machine: name, subnet, owner pid and URLs."""
    _print_labs(as_json)


def _log_dir() -> Path:
    state = read_state()
    if state and state.get("run_dir"):
        return Path(state["run_dir"])
    return lab_home() / "run"


@click.command()
@click.argument("component", required=False)
@click.option("--follow", "-f", is_flag=True, help="Keep printing new lines.")
@click.option("--lines", "-n", default=50, show_default=True, help="Lines of history to show.")
@name_option
def logs(component: str | None, follow: bool, lines: int) -> None:
    """Show a component's log (agent-1, web-imdsv1, supervisor, ...); without one, list them."""
    from lab.backends.process import tail_file

    log_dir = _log_dir()
    available = sorted(p.stem for p in log_dir.glob("*.log"))
    if component is None and not follow:
        if not available:
            raise click.ClickException(f"no logs in {log_dir}")
        for name in available:
            click.echo(name)
        return
    names = [component] if component else available
    for name in names:
        if name not in available:
            raise click.ClickException(f"no log for {name!r} in {log_dir}; known: {', '.join(available)}")
    paths = [log_dir / f"{n}.log" for n in names]
    try:  # Ctrl-C ends `logs -f` cleanly, whenever it comes
        # Followed from before the tail is read: a line written meanwhile is not lost.
        offsets = {p: p.stat().st_size for p in paths}
        for p in paths:
            text = tail_file(p, lines)
            for line in text.splitlines():
                click.echo(f"{p.stem} | {line}" if len(paths) > 1 else line)
        if not follow:
            return
        while True:
            for p in paths:
                size = p.stat().st_size if p.exists() else 0
                if size > offsets[p]:
                    with open(p, "rb") as fh:
                        fh.seek(offsets[p])
                        chunk = fh.read().decode("utf-8", "replace")
                    offsets[p] = size
                    for line in chunk.splitlines():
                        click.echo(f"{p.stem} | {line}" if len(paths) > 1 else line)
            time.sleep(0.2)
    except KeyboardInterrupt:
        pass


def _gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    import psutil

    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.Error:
        return True


@click.command()
@click.option("--all", "everything", is_flag=True,
              help="Also kill any process the state file still lists and remove the run directory.")
@click.option("--timeout", default=20.0, show_default=True, help="Seconds to wait for a clean stop.")
@name_option
def down(everything: bool, timeout: float) -> None:
    """Stop the running lab (the supervisor stops everything it started)."""
    from lab.world import wait_until

    path = state_path()
    try:
        raw = json.loads(path.read_text())
    except (OSError, ValueError):
        raw = None
    state = read_state()
    if not state and not (everything and raw):
        click.echo("no lab is running")
        if raw:
            path.unlink(missing_ok=True)
        if everything:
            _sweep_docker()
        return
    if state:
        pid = state["pid"]
        os.kill(pid, signal.SIGTERM)
        try:
            wait_until(lambda: _gone(pid), timeout=timeout, what=f"lab supervisor pid {pid} to stop")
        except TimeoutError:
            click.echo(f"supervisor {pid} did not stop in {timeout:.0f}s; killing it", err=True)
            os.kill(pid, signal.SIGKILL)
            everything = True
        raw = raw or state
    if everything and raw:
        for name, proc in (raw.get("processes") or {}).items():
            pgid = proc.get("pid")
            if pgid:
                try:
                    os.killpg(pgid, signal.SIGKILL)
                    click.echo(f"killed leftover {name} (group {pgid})")
                except (ProcessLookupError, PermissionError):
                    pass
        import shutil

        shutil.rmtree(lab_home() / "run", ignore_errors=True)
        _sweep_docker()
    path.unlink(missing_ok=True)
    click.echo("lab stopped")


def _sweep_docker() -> None:
    """`down --all` also removes docker labs' leftovers (containers and networks labelled by a run
    whose owner process is gone), when a docker engine answers: a machine without Docker has only
    the local backend's leftovers, and their sweep must not fail for it. A docker lab whose owner
    still runs (another `ecs-lab up`, a pytest session) is left to its owner."""
    try:
        from lab.backends import images

        client = images.docker_client(timeout=10)
    except Exception:  # noqa: BLE001 - no docker SDK, no engine, no permission: nothing to sweep
        return
    from lab.backends.docker import sweep

    removed = sweep(client, stale_only=True)
    if removed:
        click.echo(f"removed {removed} docker lab containers/networks left by crashed runs")


@click.command(context_settings={"ignore_unknown_options": True, "allow_extra_args": True})
@click.argument("pytest_args", nargs=-1, type=click.UNPROCESSED)
@name_option
def run(pytest_args: tuple[str, ...]) -> None:
    """Run pytest (default: scenarios/) against the running lab, or a lab it starts for the run."""
    state = read_state()
    env = dict(os.environ)
    if state:
        env["LAB_STATE"] = str(state_path())
        click.echo(f"using the running lab (pid {state['pid']})", err=True)
    args = list(pytest_args) or ["scenarios"]
    sys.exit(subprocess.call([sys.executable, "-m", "pytest", *args], env=env))


__all__ = ["up", "down", "status", "logs", "run", "list_labs", "running_labs", "name_option", "build_stack",
           "stack_from_json"]
