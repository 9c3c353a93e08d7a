"""An emulated EC2 instance's boot on the docker backend: its user data run inside the instance.

On the docker backend an instance is a set of containers on its own network, and its own network
namespace (what `host`-mode tasks share) is the `ecs-lab-instanceN-host` container. The boot runs
there, as cloud-init runs a `#!` user-data script on EC2 (EC2 user guide, "Run commands when you
launch an EC2 instance with user data input"), then `/etc/rc.local` as the init system's last step:

- one container from the lab image, as root, in the instance's network namespace, so the script
  reaches the instance's IMDS at the real `http://169.254.169.254` (answered as the instance itself,
  not one bridge hop away) and its ECS agent's introspection at the real `localhost:51678`. The
  lab's ECS agent serves introspection at 169.254.170.2:51678 (with task metadata); a relay in the
  boot container listens on 127.0.0.1:51678 for the boot's length and passes each connection on
  from the instance's address, so the introspection answers for this instance. A script written
  for EC2 therefore runs unadapted;
- `curl`, `jq` and the aws CLI are the lab image's (Debian's curl and jq, the aws CLI of the image's
  Python environment). `aws` is pointed at the lab's control plane (`AWS_ENDPOINT_URL`, dummy
  credentials), which listens on the docker host's loopback: a relay of this process on the
  instance's gateway (its private IP, the docker host's address on the instance network) passes the
  boot's connections to it, for the boot's length. Nothing leaves: the instance network is
  `internal`, the relay's only target is the control plane;
- `start ecs` and `yum install` are the same stand-ins as on the local backend (lab/instance_boot.py);
- what the script writes to `/etc` lands in the boot container's own filesystem, never on the
  machine; once it exited, the files it added or changed there (as `docker diff` lists them) are
  copied to `<instance dir>/root/etc`, where the local boot's overlay keeps them;
- the output (stdout and stderr, in order) is `<instance dir>/cloud-init-output.log`, as cloud-init
  keeps `/var/log/cloud-init-output.log`.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import io
import tarfile
import threading
import urllib.parse
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from lab.backends.docker_services import relay_tcp
from lab.backends.docker_topology import INTROSPECTION_PORT, TASK_METADATA_IP
from lab.instance_boot import BootResult, UserDataError, check_script, write_stand_ins

if TYPE_CHECKING:
    from lab.backends.docker import DockerBackend

# cloud-init's instance directory, where it keeps the user data it runs.
CLOUD_INIT_DIR = "/var/lib/cloud/instance"
STAND_INS_DIR = "/opt/ecs-lab/boot-bin"
# The boot's exit codes of its own (the script's are passed through).
RELAY_FAILED = 91


def boot_shell() -> str:
    """What the boot container runs under bash: the introspection relay on localhost:51678, the
    AMI's /etc/ecs, the user data, then /etc/rc.local."""
    relay = (f"python -m lab.backends.docker_services --role ports --log-level warning "
             f"--map 127.0.0.1:{INTROSPECTION_PORT}/tcp={TASK_METADATA_IP}:{INTROSPECTION_PORT}")
    return (
        f"{relay} &\nrelay=$!\n"
        # Up to 30 s for the relay's Python to start (a loaded machine), never past its death.
        "tries=0\n"
        f"until (exec 3<>/dev/tcp/127.0.0.1/{INTROSPECTION_PORT}) 2>/dev/null; do\n"
        f"  kill -0 $relay 2>/dev/null || {{ echo 'ecs-lab: the ECS agent relay on localhost:"
        f"{INTROSPECTION_PORT} exited' >&2; exit {RELAY_FAILED}; }}\n"
        f"  tries=$((tries + 1)); [ $tries -lt 300 ] || {{ echo 'ecs-lab: the ECS agent relay on "
        f"localhost:{INTROSPECTION_PORT} did not listen within 30 s' >&2; exit {RELAY_FAILED}; }}\n"
        "  sleep 0.1\ndone\n"
        # The ECS-optimized AMI's layout: ecs.config is appended to in an existing /etc/ecs.
        "mkdir -p /etc/ecs\n"
        f'bash "{CLOUD_INIT_DIR}/user-data.txt" || exit $?\n'
        "if [ -f /etc/rc.local ]; then bash /etc/rc.local || exit $?; fi\n")


@contextlib.contextmanager
def control_plane_relay(bind_ip: str, control_plane_url: str) -> Iterator[str]:
    """A TCP relay on `bind_ip` (an ephemeral port) to the control plane, while the block runs;
    yields the control plane's URL as containers reach it through the relay."""
    parts = urllib.parse.urlsplit(control_plane_url)
    if not parts.hostname or not parts.port:
        raise ValueError(f"the control plane URL {control_plane_url!r} has no host and port")
    target = ("127.0.0.1" if parts.hostname in ("0.0.0.0", "") else parts.hostname, parts.port)
    loop = asyncio.new_event_loop()
    ready = threading.Event()
    found: dict = {}

    async def serve() -> None:
        try:
            server = await asyncio.start_server(functools.partial(relay_tcp, target=target), bind_ip, 0)
        except OSError as exc:
            found["error"] = exc
            ready.set()
            return
        found["port"] = server.sockets[0].getsockname()[1]
        found["stop"] = stop = asyncio.Event()
        ready.set()
        async with server:
            await stop.wait()

    thread = threading.Thread(target=loop.run_until_complete, args=(serve(),), daemon=True,
                              name="boot-control-plane-relay")
    thread.start()
    ready.wait(10)
    try:
        if "port" not in found:
            raise UserDataError(f"cannot relay the control plane to the instance on {bind_ip}: "
                                f"{found.get('error', 'the relay did not start')}")
        yield f"{parts.scheme}://{bind_ip}:{found['port']}"
    finally:
        if "stop" in found:
            loop.call_soon_threadsafe(found["stop"].set)
        thread.join(timeout=10)
        if not thread.is_alive():
            loop.close()


def copy_etc_changes(api, cid: str, upper: Path) -> list[str]:
    """The regular files the container added or changed under /etc (`docker diff`), copied to
    `upper` at their paths below /etc; returns those paths."""
    copied = []
    for change in api.diff(cid) or []:
        path = change["Path"]
        if change["Kind"] not in (0, 1) or not path.startswith("/etc/"):
            continue  # deleted, or outside /etc
        stream, _stat = api.get_archive(cid, path)
        with tarfile.open(fileobj=io.BytesIO(b"".join(stream))) as tar:
            member = tar.next()
            if member is None or not member.isfile():
                continue  # a directory: its files are listed on their own
            data = tar.extractfile(member)
            target = upper / Path(path).relative_to("/etc")
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(data.read() if data else b"")
            copied.append(path)
    return copied


def boot_instance(backend: DockerBackend, n: int, script: str, *, instance_dir: Path,
                  control_plane_url: str, timeout: float = 180.0) -> BootResult:
    """Run `script` as instance `n` boots with it, then the `/etc/rc.local` it leaves (module
    docstring); raise `UserDataError` with the boot's output when either fails."""
    check_script(script)
    instance_dir = Path(instance_dir).resolve()
    upper, bin_dir = instance_dir / "root" / "etc", instance_dir / "bin"
    upper.mkdir(parents=True, exist_ok=True)
    write_stand_ins(bin_dir, aws_cli=False)  # the image's own aws CLI is on PATH
    user_data = instance_dir / "user-data.txt"
    user_data.write_text(script)
    log = instance_dir / "cloud-init-output.log"
    netns = backend.instance_netns(n)
    api = backend.client.api
    with control_plane_relay(backend.topo.private_ip(n), control_plane_url) as aws_endpoint:
        env = {
            "PATH": f"{STAND_INS_DIR}:/opt/lab/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:"
                    "/sbin:/bin",
            "HOME": "/root",
            "AWS_ENDPOINT_URL": aws_endpoint,
            "AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test",
            "AWS_CONFIG_FILE": "/dev/null", "AWS_SHARED_CREDENTIALS_FILE": "/dev/null",
            # Their EC2 values, which are also what a script adapted for the local backend reads.
            "AWS_EC2_METADATA_SERVICE_ENDPOINT": "http://169.254.169.254/",
            "ECS_CONTAINER_INSTANCE_INTROSPECTION_URL": f"http://localhost:{INTROSPECTION_PORT}",
            "NO_PROXY": "*", "no_proxy": "*",
        }
        cid = backend.create_boot_container(
            n, name=f"ecs-lab-instance{n}-boot-{uuid.uuid4().hex[:6]}", netns=netns,
            entrypoint=["bash", "-c", boot_shell()], env=env,
            binds={str(bin_dir): {"bind": STAND_INS_DIR, "mode": "ro"},
                   str(user_data): {"bind": f"{CLOUD_INIT_DIR}/user-data.txt", "mode": "ro"}})
        try:
            api.start(cid)
            try:
                code = api.wait(cid, timeout=timeout)["StatusCode"]
            except Exception:  # noqa: BLE001 - docker-py's read timeout: the script still runs
                with contextlib.suppress(Exception):
                    api.kill(cid)
                output = api.logs(cid).decode(errors="replace")
                log.write_text(output)
                raise UserDataError(f"user data still running after {timeout:.0f}s (output in {log})"
                                    ) from None
            output = api.logs(cid).decode(errors="replace")
            log.write_text(output)
            copy_etc_changes(api, cid, upper)
        finally:
            with contextlib.suppress(Exception):
                api.remove_container(cid, force=True)
    if code == RELAY_FAILED:
        raise UserDataError(f"could not give the instance its ECS agent at localhost:{INTROSPECTION_PORT}: "
                            f"{output}")
    if code != 0:
        raise UserDataError(f"user data exited {code}; its output ({log}):\n{output}")
    return BootResult(code, output, upper)


__all__ = ["boot_instance", "boot_shell", "control_plane_relay", "copy_etc_changes"]
