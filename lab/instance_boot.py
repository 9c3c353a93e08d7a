"""An emulated EC2 instance's boot: its user data run as cloud-init runs it, then `/etc/rc.local`.

On EC2, cloud-init runs a user-data script that starts with `#!` as root once the instance has
booted (EC2 user guide, "Run commands when you launch an EC2 instance with user data input"), and
the init system runs `/etc/rc.local` last. The lab does the same for an instance whose
registration carries user data (`ContainerInstance.user_data`, also served by its IMDS on
`/latest/user-data`):

- the script runs under `bash` as root, in a mount namespace of its own where `/etc` is an overlay
  of the machine's: what it writes there (`/etc/ecs/ecs.config`, `/etc/rc.local`) lands in the
  instance's directory (`<run_dir>/instances/<n>/root/etc`) and never in the machine's `/etc`;
- `curl` and `jq` are the machine's; `aws` is the aws CLI of the lab's Python environment, pointed
  at the lab's control plane (`AWS_ENDPOINT_URL`, dummy credentials: nothing leaves the machine);
- the instance's own endpoints are in the environment: `AWS_EC2_METADATA_SERVICE_ENDPOINT` (its
  IMDS, the variable the AWS SDKs and CLI read) and `ECS_CONTAINER_INSTANCE_INTROSPECTION_URL`
  (its ECS agent's introspection API, `localhost:51678` on EC2). A script written for EC2 is
  adapted in these endpoints only;
- the ECS-optimized AMI's `start ecs` (upstart) and `yum install` are stand-ins: the instance's ECS
  agent already runs (it registered the instance), and `yum install` checks that each package's
  command is present instead of installing anything.

What the boot printed is kept in `<instance dir>/cloud-init-output.log`, as cloud-init keeps
`/var/log/cloud-init-output.log`.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

# yum package -> the command it provides (what the stand-in `yum install` checks for).
_PACKAGE_COMMANDS = {"aws-cli": "aws", "awscli": "aws", "jq": "jq", "curl": "curl"}


class UserDataError(RuntimeError):
    """The instance's boot could not run its user data (or the script failed)."""


@dataclass
class BootResult:
    exit_code: int
    output: str
    etc: Path  # the instance's own /etc changes (the overlay's upper layer)


def write_stand_ins(bin_dir: Path, *, aws_cli: bool = True) -> None:
    """The AMI's commands the lab plays, as scripts in `bin_dir` (put first on the boot's PATH):
    `start`, `yum` and, with `aws_cli`, an `aws` running this Python environment's aws CLI (a boot
    whose image has its own `aws` on PATH, as the docker boot's, goes without)."""
    bin_dir.mkdir(parents=True, exist_ok=True)
    tools = []
    if aws_cli:
        aws = bin_dir / "aws"
        aws.write_text(f'#!/bin/sh\nexec "{sys.executable}" -m awscli "$@"\n')
        tools.append(aws)
    start = bin_dir / "start"
    start.write_text('#!/bin/sh\n# upstart\'s `start <job>`: the instance\'s ECS agent already runs.\n'
                     'echo "$1 start/running"\n')
    checks = "\n".join(f'    {pkg}) cmd={cmd} ;;' for pkg, cmd in _PACKAGE_COMMANDS.items())
    yum = bin_dir / "yum"
    yum.write_text(
        "#!/bin/sh\n# A stand-in for `yum install`: the lab installs nothing, it checks the commands exist.\n"
        '[ "$1" = install ] || { echo "yum: only \'install\' is emulated" >&2; exit 1; }\n'
        "shift\nfor pkg in \"$@\"; do\n  case \"$pkg\" in\n    -*) continue ;;\n"
        f"{checks}\n    *) cmd=$pkg ;;\n  esac\n"
        '  command -v "$cmd" >/dev/null || { echo "yum: $pkg: the lab cannot install it and $cmd is '
        'not on this machine" >&2; exit 1; }\n  echo "Package $pkg already installed"\ndone\n')
    for tool in (*tools, start, yum):
        tool.chmod(0o755)


def check_script(script: str) -> None:
    """Refuse user data the lab does not run (cloud-config, MIME multi-part: not `#!`-led)."""
    if not script.startswith("#!"):
        raise UserDataError("user data that is not a script (no '#!' first line) is not run by the lab")


def boot_requirements() -> list[str]:
    """What this machine lacks to boot an instance with user data (empty: nothing)."""
    missing = [tool for tool in ("bash", "unshare", "mount", "curl", "jq") if shutil.which(tool) is None]
    if os.geteuid() != 0:
        missing.append("root (the instance's own /etc is an overlay mounted in a private mount namespace)")
    return missing


def run_user_data(script: str, *, instance_dir: Path, imds_url: str, introspection_url: str,
                  control_plane_url: str, timeout: float = 180.0) -> BootResult:
    """Run `script` as instance boot runs user data, then the `/etc/rc.local` it leaves; raise
    `UserDataError` with the boot's output when either fails."""
    missing = boot_requirements()
    if missing:
        raise UserDataError(f"cannot run user data on this machine: missing {', '.join(missing)}")
    check_script(script)
    instance_dir = Path(instance_dir).resolve()
    upper, work, bin_dir = instance_dir / "root" / "etc", instance_dir / "overlay-work", instance_dir / "bin"
    # The ECS-optimized AMI's layout: /etc/ecs exists (ecs.config is appended to, not created in a
    # new directory).
    for d in (upper / "ecs", work):
        d.mkdir(parents=True, exist_ok=True)
    write_stand_ins(bin_dir)
    user_data = instance_dir / "user-data.txt"
    user_data.write_text(script)
    env = {
        "PATH": f"{bin_dir}:{os.environ.get('PATH', '/usr/bin:/bin')}",
        "HOME": str(instance_dir),
        "AWS_ENDPOINT_URL": control_plane_url,
        "AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test",
        "AWS_CONFIG_FILE": "/dev/null", "AWS_SHARED_CREDENTIALS_FILE": "/dev/null",
        "AWS_EC2_METADATA_SERVICE_ENDPOINT": imds_url.rstrip("/") + "/",
        "ECS_CONTAINER_INSTANCE_INTROSPECTION_URL": introspection_url.rstrip("/"),
        # The lab's endpoints are on loopback: no proxy of the machine may take them.
        "NO_PROXY": "*", "no_proxy": "*",
    }
    # cloud-init's part (the user data), then the init system's last step (rc.local), in one
    # namespace so both see the instance's /etc.
    boot = (f"mount -t overlay overlay -o lowerdir=/etc,upperdir={upper},workdir={work} /etc || exit 90\n"
            f'bash "{user_data}" || exit $?\n'
            "if [ -f /etc/rc.local ]; then bash /etc/rc.local || exit $?; fi\n")
    log = instance_dir / "cloud-init-output.log"
    # Its own session, so a script that hangs is stopped with everything it started.
    proc = subprocess.Popen(["unshare", "--mount", "--propagation", "private", "bash", "-c", boot],
                            env=env, cwd=instance_dir, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, start_new_session=True)
    try:
        output, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        output, _ = proc.communicate()
        log.write_text(output)
        raise UserDataError(f"user data still running after {timeout:.0f}s (output in {log})") from None
    log.write_text(output)
    if proc.returncode == 90:
        raise UserDataError(f"could not give the instance its own /etc (overlay mount failed): {output}")
    if proc.returncode != 0:
        raise UserDataError(f"user data exited {proc.returncode}; its output ({log}):\n{output}")
    return BootResult(proc.returncode, output, upper)


__all__ = ["BootResult", "UserDataError", "boot_requirements", "check_script", "run_user_data",
           "write_stand_ins"]
