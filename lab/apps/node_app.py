"""The Node sample app (`lab/apps/node/app.js`): real dd-trace and hot-shots from npm.

Its dependencies are pinned by the committed `package.json` + `package-lock.json` and installed by
the lab into `lab/apps/node/node_modules` (`npm ci`: exactly the lock file, nothing resolved anew).
`ensure_installed()` does it when the modules are missing or older than the lock file; CI runs the
same up front (`python -m lab.apps node-install`, or `npm ci --ignore-scripts` in that directory).
Node itself comes from the machine (Debian's `nodejs`); dd-trace 5 needs Node >= 18.

`task_definition(backend=...)` is the app as an ECS task definition naming the image that backend
runs: on the local backend the lab image, whose filesystem is the host's there (so `workingDirectory`
is this directory and the host's node runs it); on the docker backend `ecs-agent-lab/node-app`
(`docker/node-app.Dockerfile`: Debian's Node 18 and the modules `npm ci`ed from the same lock file
at build time, made by `ecs-lab images build`), whose app lives in `/opt/node-app`.
"""

from __future__ import annotations

import fcntl
import shutil
import subprocess
from pathlib import Path

from lab.apps.entrypoints import METADATA_ENDPOINT_ENV
from lab.tasks import LAB_IMAGE, NODE_APP_IMAGE

NODE_APP_DIR = Path(__file__).resolve().parent / "node"
LOCK_FILE = NODE_APP_DIR / "package-lock.json"
MODULES_DIR = NODE_APP_DIR / "node_modules"
# What `npm ci` leaves behind: newer than the lock file when the install matches it.
INSTALLED_MARKER = MODULES_DIR / ".package-lock.json"
MIN_NODE_MAJOR = 18
# Where docker/node-app.Dockerfile puts the app (app.js, package.json, node_modules).
IMAGE_APP_DIR = "/opt/node-app"
BACKENDS = ("local", "docker")


class NodeAppUnavailable(RuntimeError):
    """Node or npm is missing, too old, or the install failed; the message says which and what to run."""


def node_major(node: str = "node") -> int:
    exe = shutil.which(node)
    if exe is None:
        raise NodeAppUnavailable("`node` is not installed (Debian: apt-get install -y nodejs npm)")
    out = subprocess.run([exe, "--version"], capture_output=True, text=True, timeout=30).stdout.strip()
    try:
        return int(out.lstrip("v").split(".")[0])
    except ValueError:
        raise NodeAppUnavailable(f"`node --version` printed {out!r}") from None


def installed() -> bool:
    return INSTALLED_MARKER.exists() and INSTALLED_MARKER.stat().st_mtime >= LOCK_FILE.stat().st_mtime \
        and (MODULES_DIR / "dd-trace").is_dir() and (MODULES_DIR / "hot-shots").is_dir()


def ensure_installed(timeout: float = 300.0) -> Path:
    """Install the app's npm dependencies when they are missing or stale; returns the app directory."""
    major = node_major()
    if major < MIN_NODE_MAJOR:
        raise NodeAppUnavailable(f"node v{major} is too old: dd-trace 5 needs Node >= {MIN_NODE_MAJOR}")
    if installed():
        return NODE_APP_DIR
    npm = shutil.which("npm")
    if npm is None:
        raise NodeAppUnavailable("`npm` is not installed (Debian: apt-get install -y npm)")
    # One install at a time: `npm ci` first removes node_modules, so a second one at once (two
    # pytest-xdist workers, two labs) fails with ENOTEMPTY or finds the other's tree half gone.
    with open(NODE_APP_DIR / ".install.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if installed():  # the other process installed it meanwhile
            return NODE_APP_DIR
        _npm_ci(npm, timeout)
    return NODE_APP_DIR


def _npm_ci(npm: str, timeout: float) -> None:
    # --ignore-scripts: the only install script in the tree is the native build of hot-shots' optional
    # unix-dgram (Unix-socket transport, unused here); skipping it needs no compiler and gives the same
    # tree on every npm version. dd-trace's native parts ship prebuilt.
    done = subprocess.run([npm, "ci", "--no-audit", "--no-fund", "--ignore-scripts"], cwd=NODE_APP_DIR,
                          capture_output=True, text=True, timeout=timeout)
    if done.returncode != 0 or not installed():
        raise NodeAppUnavailable(f"`npm ci` in {NODE_APP_DIR} failed ({done.returncode}):\n"
                                 f"{done.stdout[-2000:]}\n{done.stderr[-2000:]}")


def task_definition(*, family: str = "node-web-task", service: str = "node-web", env: str = "lab",
                    version: str = "1.0.0", client_stats: bool = True, work_interval_ms: int = 1000,
                    backend: str = "local", app_dir: Path | None = None) -> dict:
    """The Node app's task definition (bridge mode, like the Python sample apps), for the image the
    backend runs (module docstring). `app_dir` (local backend only) runs another checkout of the app."""
    if backend not in BACKENDS:
        raise ValueError(f"backend {backend!r}: the Node app runs on {' and '.join(BACKENDS)}")
    if backend == "docker":
        if app_dir is not None:
            raise ValueError("app_dir is the host's directory of the app, which only the local backend "
                             f"runs; on docker the app is {IMAGE_APP_DIR} in {NODE_APP_IMAGE}")
        image, working_dir = NODE_APP_IMAGE, IMAGE_APP_DIR
    else:
        image, working_dir = LAB_IMAGE, str(app_dir or NODE_APP_DIR)
    environment = {
        "DD_SERVICE": service,
        "DD_ENV": env,
        "DD_VERSION": version,
        # dd-trace computes its own APM stats and PUTs them to the agent's /v0.6/stats.
        "DD_TRACE_STATS_COMPUTATION_ENABLED": "true" if client_stats else "false",
        # The task definition's default, as on EC2; the backends replace it with the lab's IMDS.
        METADATA_ENDPOINT_ENV: "http://169.254.169.254",
        "LAB_NODE_WORK_INTERVAL_MS": str(work_interval_ms),
    }
    return {
        "family": family,
        "networkMode": "bridge",
        "requiresCompatibilities": ["EC2"],
        "containerDefinitions": [{
            "name": "app",
            "image": image,
            "essential": True,
            "cpu": 64,
            "memory": 256,
            "workingDirectory": working_dir,
            "command": ["node", "app.js"],
            "portMappings": [{"containerPort": 8080, "protocol": "tcp"}],
            "environment": [{"name": k, "value": v} for k, v in environment.items()],
            "dockerLabels": {"com.datadoghq.tags.service": service, "com.datadoghq.tags.env": env,
                             "com.datadoghq.tags.version": version},
        }],
    }
