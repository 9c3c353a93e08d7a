"""The images the docker backend runs: a registry-free Debian base, the lab's own image, the Node
sample app's image (`docker/node-app.Dockerfile`, docs/apps.md#the-node-sample-app) and the
serverless-compat agent image (`docker/serverless-compat.Dockerfile`, see docs/agents.md).

No registry is assumed reachable (docs/docker_backend.md), so nothing is pulled: the base is Debian
made by `debootstrap --variant=minbase` and `docker import`ed; the lab image is built on it from
`docker/Dockerfile`. Both are cached: an existing tag is reused unless a rebuild is asked.

Making them takes a lock file (`LAB_IMAGES_LOCK`): a second process that needs the images at the
same time (a test while CI builds them ahead, another checkout on the same engine) waits for the
first and then finds them made, instead of building the same layers a second time beside it.

Behind an intercepting HTTPS proxy, pip (and npm) in the build need that proxy's CA bundle. It is an
input of the build (`ca_bundle`, default `$PIP_CERT`), added to the build context in memory as
`ca-bundle.crt`: never a file in the repo, and only the stages that download see it.

What a developer's machine leaves in the source tree is never an input: `node_modules` (the local
backend's `npm ci` of the Node app) and caches are left out of the build context and the source hash,
so installing the Node app locally neither makes the lab image stale nor ships its modules in it.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import subprocess
import tarfile
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

# The engine helpers live below lab.ecs and lab.backends; the builder and its callers use them here.
from lab.docker_engine import DockerUnavailable, docker_client, image_exists  # noqa: F401
from lab.tasks import LAB_IMAGE, NODE_APP_IMAGE

BASE_IMAGE = "ecs-agent-lab/debian:bookworm"
DEBIAN_SUITE = "bookworm"
DEBIAN_MIRROR = "http://deb.debian.org/debian"
LAB_LABEL = "ecs-agent-lab"
SOURCE_LABEL = f"{LAB_LABEL}.source-hash"
REPO_ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = "docker/Dockerfile"
# What the Dockerfile COPYs; the rest of the repo stays out of the build context.
CONTEXT_PATHS = ("pyproject.toml", "README.md", "lab", "docker")
# Directories of a working tree that are never image inputs (see the module docstring).
NOT_INPUTS = frozenset({"__pycache__", "node_modules"})
NOT_INPUT_SUFFIXES = (".pyc", ".pyo", ".lock")


def _is_input(rel: Path) -> bool:
    return not (NOT_INPUTS & set(rel.parts)) and rel.suffix not in NOT_INPUT_SUFFIXES

class ImageBuildError(RuntimeError):
    """An image could not be made; the message carries the failing step's output."""


@dataclass
class ImageResult:
    tag: str
    image_id: str
    built: bool  # False when the cached tag was reused
    seconds: float


# -- base image -----------------------------------------------------------------------------------


def ensure_base_image(client=None, tag: str = BASE_IMAGE, *, suite: str = DEBIAN_SUITE,
                      mirror: str = DEBIAN_MIRROR, rebuild: bool = False,
                      log: Callable[[str], None] = lambda _m: None) -> ImageResult:
    """The Debian base image, from `debootstrap --variant=minbase` + `docker import` (no registry)."""
    client = client or docker_client()
    started = time.monotonic()
    if not rebuild and image_exists(client, tag):
        return ImageResult(tag, client.images.get(tag).id, False, time.monotonic() - started)
    if shutil.which("debootstrap") is None:
        raise ImageBuildError(
            "debootstrap is missing: it makes the base image without a registry. "
            "Install it with `sudo apt-get install -y debootstrap` (Debian/Ubuntu), or build the lab "
            "image on any Debian image you have: `--base-image debian:bookworm-slim`."
        )
    if os.geteuid() != 0:
        raise ImageBuildError("debootstrap needs root (it creates device nodes and chroots); run as root "
                              "or pass a base image you already have (`--base-image`).")
    with tempfile.TemporaryDirectory(prefix="ecs-lab-rootfs-") as rootfs:
        log(f"debootstrap --variant=minbase {suite} (from {mirror})")
        proc = subprocess.run(["debootstrap", "--variant=minbase", suite, rootfs, mirror],
                              capture_output=True, text=True)
        if proc.returncode != 0:
            raise ImageBuildError(f"debootstrap failed (exit {proc.returncode}):\n"
                                  f"{_tail(proc.stdout + proc.stderr)}")
        # Images are meant to be small and reproducible: drop apt's downloaded lists and packages.
        for leftover in ("var/cache/apt/archives", "var/lib/apt/lists"):
            for p in Path(rootfs, leftover).glob("*"):
                if p.is_file():
                    p.unlink()
        log(f"docker import -> {tag}")
        tar_proc = subprocess.Popen(["tar", "-C", rootfs, "--numeric-owner", "-c", "."],
                                    stdout=subprocess.PIPE)
        try:
            imported = subprocess.run(
                ["docker", "import", "--change", f"LABEL {LAB_LABEL}.image=base",
                 "--change", 'CMD ["/bin/bash"]', "-", tag],
                stdin=tar_proc.stdout, capture_output=True, text=True)
        finally:
            assert tar_proc.stdout is not None
            tar_proc.stdout.close()
            tar_proc.wait()
        if imported.returncode != 0:
            raise ImageBuildError(f"docker import failed: {imported.stderr.strip()}")
    return ImageResult(tag, client.images.get(tag).id, True, time.monotonic() - started)


# -- lab image ------------------------------------------------------------------------------------


def default_ca_bundle() -> str | None:
    """The CA bundle pip on this machine uses (PIP_CERT), if any: an intercepting proxy's CA."""
    value = os.environ.get("PIP_CERT")
    return value if value and Path(value).is_file() else None


def source_hash(root: Path = REPO_ROOT, paths: Iterable[str] = CONTEXT_PATHS) -> str:
    """A digest of the image's inputs from the repo: a lab image built from other sources is stale."""
    digest = hashlib.sha256()
    for rel in paths:
        src = root / rel
        if not src.exists():
            continue
        files = [src] if src.is_file() else sorted(p for p in src.rglob("*") if p.is_file())
        for f in files:
            if not _is_input(f.relative_to(root)):
                continue
            digest.update(str(f.relative_to(root)).encode() + b"\0" + f.read_bytes() + b"\0")
    return digest.hexdigest()[:16]


def build_context(root: Path = REPO_ROOT, ca_bundle: str | None = None,
                  paths: Iterable[str] = CONTEXT_PATHS) -> io.BytesIO:
    """The build context as an in-memory tar: the repo's image inputs plus the optional CA bundle."""
    buf = io.BytesIO()

    def skip(info: tarfile.TarInfo) -> tarfile.TarInfo | None:
        if not _is_input(Path(info.name)):
            return None
        info.uid = info.gid = 0
        info.uname = info.gname = ""
        return info

    with tarfile.open(fileobj=buf, mode="w") as tar:
        for rel in paths:
            src = root / rel
            if src.exists():
                tar.add(str(src), arcname=rel, filter=skip)
        if ca_bundle:
            data = Path(ca_bundle).read_bytes()
            info = tarfile.TarInfo("ca-bundle.crt")
            info.size = len(data)
            info.mode = 0o644
            tar.addfile(info, io.BytesIO(data))
    buf.seek(0)
    return buf


def build_lab_image(client=None, tag: str = LAB_IMAGE, *, base_image: str = BASE_IMAGE,
                    ca_bundle: str | None | bool = True, rebuild: bool = False, no_cache: bool = False,
                    log: Callable[[str], None] = lambda _m: None) -> ImageResult:
    """Build `docker/Dockerfile` as `tag` on `base_image`.

    `ca_bundle=True` means "PIP_CERT if set"; a path uses that file; False/None builds without one.
    With `rebuild=False` an existing tag built from the same sources (label `SOURCE_LABEL`) is
    reused; otherwise the build runs, which is fast when only the lab's code changed (the
    dependency layers stay cached: about 8 s here).
    """
    client = client or docker_client()
    started = time.monotonic()
    digest = source_hash()
    if not rebuild and image_exists(client, tag):
        image = client.images.get(tag)
        if (image.labels or {}).get(SOURCE_LABEL) == digest:
            return ImageResult(tag, image.id, False, time.monotonic() - started)
        log(f"{tag} was built from other sources; rebuilding (dependency layers stay cached)")
    image_id = _docker_build(client, tag, dockerfile=DOCKERFILE, paths=CONTEXT_PATHS, role="lab",
                             digest=digest, buildargs={"BASE_IMAGE": base_image}, ca_bundle=ca_bundle,
                             no_cache=no_cache, log=log)
    return ImageResult(tag, image_id, True, time.monotonic() - started)


def _docker_build(client, tag: str, *, dockerfile: str, paths: Iterable[str], role: str, digest: str,
                  buildargs: dict[str, str], ca_bundle: str | None | bool, no_cache: bool,
                  log: Callable[[str], None]) -> str:
    """One `docker build` of `dockerfile` from the repo's `paths` (+ the CA bundle); returns the image id."""
    bundle = default_ca_bundle() if ca_bundle is True else (ca_bundle or None)
    if bundle and not Path(bundle).is_file():
        raise ImageBuildError(f"CA bundle {bundle} does not exist")
    context = build_context(ca_bundle=bundle, paths=paths)
    log(f"building {tag} on {buildargs.get('BASE_IMAGE')}" + (f" (CA bundle {bundle})" if bundle else ""))
    output: list[str] = []
    image_id = None
    # The low-level API streams the build log, so a failure shows the failing step's output.
    for chunk in client.api.build(fileobj=context, custom_context=True, dockerfile=dockerfile, tag=tag,
                                  buildargs=buildargs, rm=True, forcerm=True,
                                  nocache=no_cache, decode=True,
                                  labels={f"{LAB_LABEL}.image": role, SOURCE_LABEL: digest}):
        if "stream" in chunk:
            text = chunk["stream"]
            output.append(text)
            if text.strip():
                log(text.rstrip())
        if "aux" in chunk and "ID" in chunk["aux"]:
            image_id = chunk["aux"]["ID"]
        if "error" in chunk:
            raise ImageBuildError(f"building {tag} failed: {chunk['error'].strip()}\n"
                                  f"{_tail(''.join(output))}")
    if image_id is None:
        image_id = client.images.get(tag).id
    # The image this build replaced is left untagged; drop it so rebuilds do not pile up.
    try:
        client.images.prune(filters={"dangling": True, "label": f"{LAB_LABEL}.image={role}"})
    except Exception:  # noqa: BLE001 - pruning is housekeeping; an image in use stays, harmlessly
        pass
    return image_id


IMAGES_LOCK = Path(os.environ.get("LAB_IMAGES_LOCK", "/tmp/ecs-agent-lab-images.lock"))


@contextmanager
def images_lock(log: Callable[[str], None] = lambda _m: None, timeout: float | None = None) -> Iterator[None]:
    """Held while the images are checked and made: one builder per machine at a time."""
    import fcntl

    timeout = float(os.environ.get("LAB_IMAGES_LOCK_TIMEOUT", "1200")) if timeout is None else timeout
    IMAGES_LOCK.parent.mkdir(parents=True, exist_ok=True)
    with open(IMAGES_LOCK, "a+") as fh:
        deadline = time.monotonic() + timeout
        announced = False
        while True:
            try:
                fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                fh.seek(0)
                holder = fh.read().strip() or "another process"
                if not announced:
                    log(f"images: {holder} is making the images; waiting for it")
                    announced = True
                if time.monotonic() > deadline:
                    raise ImageBuildError(f"{holder} held {IMAGES_LOCK} for {timeout:.0f}s while making the "
                                          "images; if it is gone, remove that file") from None
                time.sleep(0.5)
        fh.seek(0)
        fh.truncate()
        fh.write(f"pid {os.getpid()}\n")
        fh.flush()
        try:
            yield
        finally:
            fh.seek(0)
            fh.truncate()
            fh.flush()
            fcntl.flock(fh, fcntl.LOCK_UN)


def ensure_lab_image(client=None, *, base_image: str | None = None, rebuild: bool = False,
                     log: Callable[[str], None] = lambda _m: None) -> list[ImageResult]:
    """Everything the docker backend needs from the repo: base (unless given) then the lab image."""
    client = client or docker_client()
    with images_lock(log):
        return _ensure_lab_image(client, base_image=base_image, rebuild=rebuild, log=log)


def _ensure_lab_image(client, *, base_image: str | None, rebuild: bool,
                      log: Callable[[str], None]) -> list[ImageResult]:
    results = []
    if base_image is None:
        results.append(ensure_base_image(client, log=log))
        base_image = BASE_IMAGE
    elif not image_exists(client, base_image):
        raise ImageBuildError(f"base image {base_image} is not present locally and the lab pulls nothing; "
                              f"`docker load` it or omit --base-image to debootstrap one")
    results.append(build_lab_image(client, base_image=base_image, rebuild=rebuild, log=log))
    return results


# -- the Node sample app's image -----------------------------------------------------------------

NODE_APP_DOCKERFILE = "docker/node-app.Dockerfile"
# What that Dockerfile COPYs (the app and its lock file), so that only they make the image stale.
NODE_APP_PATHS = (NODE_APP_DOCKERFILE, "lab/apps/node/app.js", "lab/apps/node/package.json",
                  "lab/apps/node/package-lock.json")


def build_node_app_image(client=None, tag: str = NODE_APP_IMAGE, *, base_image: str = BASE_IMAGE,
                         ca_bundle: str | None | bool = True, rebuild: bool = False, no_cache: bool = False,
                         log: Callable[[str], None] = lambda _m: None) -> ImageResult:
    """`ecs-agent-lab/node-app:latest`: Debian's Node and the app's `npm ci`ed modules on the base.

    Cached by content like the others: reused when built from the same files and base image (label
    `SOURCE_LABEL`); an edit of app.js rebuilds only its last layer (the modules stay cached)."""
    return _build_on_base(client or docker_client(), tag, dockerfile=NODE_APP_DOCKERFILE,
                          paths=NODE_APP_PATHS, role="node-app", base_image=base_image, buildargs={},
                          ca_bundle=ca_bundle, rebuild=rebuild, no_cache=no_cache, log=log)


def _build_on_base(client, tag: str, *, dockerfile: str, paths: Iterable[str], role: str, base_image: str,
                   buildargs: dict[str, str], ca_bundle: str | None | bool, rebuild: bool, no_cache: bool,
                   log: Callable[[str], None]) -> ImageResult:
    """`dockerfile` built as `tag` on `base_image`, cached by content: the tag is reused when it was
    built from the same `paths`, build arguments and base image (label `SOURCE_LABEL`)."""
    started = time.monotonic()
    if not image_exists(client, base_image):
        raise ImageBuildError(f"base image {base_image} is not present; `ecs-lab images build` makes it")
    args = "".join(buildargs[k] for k in sorted(buildargs))
    inputs = hashlib.sha256((source_hash(paths=paths) + args
                             + client.images.get(base_image).id).encode()).hexdigest()[:16]
    if not rebuild and image_exists(client, tag):
        image = client.images.get(tag)
        if (image.labels or {}).get(SOURCE_LABEL) == inputs:
            return ImageResult(tag, image.id, False, time.monotonic() - started)
        log(f"{tag} was built from other sources; rebuilding")
    image_id = _docker_build(client, tag, dockerfile=dockerfile, paths=paths, role=role, digest=inputs,
                             buildargs={"BASE_IMAGE": base_image, **buildargs}, ca_bundle=ca_bundle,
                             no_cache=no_cache, log=log)
    return ImageResult(tag, image_id, True, time.monotonic() - started)


def ensure_node_app_image(client=None, *, base_image: str | None = None, rebuild: bool = False,
                          log: Callable[[str], None] = lambda _m: None) -> list[ImageResult]:
    """The Node app's image (and the debootstrap'd base unless one is given), under the images' lock
    (see the module docstring)."""
    client = client or docker_client()
    with images_lock(log):
        results = []
        if base_image is None:
            results.append(ensure_base_image(client, log=log))
        results.append(build_node_app_image(client, base_image=base_image or BASE_IMAGE, rebuild=rebuild,
                                            log=log))
        return results


# -- agent images ---------------------------------------------------------------------------------

SERVERLESS_COMPAT_DOCKERFILE = "docker/serverless-compat.Dockerfile"
# What that Dockerfile COPYs: the launcher is one standard-library module, not the lab package.
SERVERLESS_COMPAT_PATHS = (SERVERLESS_COMPAT_DOCKERFILE, "docker/serverless-compat",
                           "lab/serverless_compat.py")


def build_serverless_compat_image(client=None, *, version: str | None = None, base_image: str = BASE_IMAGE,
                                  ca_bundle: str | None | bool = True, rebuild: bool = False,
                                  no_cache: bool = False,
                                  log: Callable[[str], None] = lambda _m: None) -> ImageResult:
    """`ecs-agent-lab/agent-serverless-compat:<version>`: the PyPI binary on the Debian base.

    Cached by content: the tag is reused when it was built from the same files, version and base
    image (label `SOURCE_LABEL`); `rebuild` builds anyway (docker's layer cache still applies).
    """
    from lab.agent_images import serverless_compat_image, serverless_compat_version

    version = version or serverless_compat_version()
    return _build_on_base(client or docker_client(), serverless_compat_image(version),
                          dockerfile=SERVERLESS_COMPAT_DOCKERFILE, paths=SERVERLESS_COMPAT_PATHS,
                          role="agent-serverless-compat", base_image=base_image,
                          buildargs={"SERVERLESS_COMPAT_VERSION": version}, ca_bundle=ca_bundle,
                          rebuild=rebuild, no_cache=no_cache, log=log)


def ensure_images(agent: str = "lab", client=None, *, base_image: str | None = None, rebuild: bool = False,
                  log: Callable[[str], None] = lambda _m: None) -> list[ImageResult]:
    """The images for one agent kind (`lab`/`emulated`, with the Node app's image, or
    `serverless-compat`), base image first."""
    from lab.agent_images import BUILDABLE, SERVERLESS_COMPAT

    if agent not in BUILDABLE:
        raise ImageBuildError(f"unknown agent {agent!r}: the lab builds images for "
                              f"{', '.join(sorted(BUILDABLE))} (a real Datadog Agent image is "
                              "`docker load`ed, never built)")
    if BUILDABLE[agent] != SERVERLESS_COMPAT:
        # The lab image, then the Node sample app's image (scenarios/tracers runs it): one `images
        # build` (and CI's background build) makes everything the docker scenarios run. The lock is
        # let go in between, so a lab waiting for the lab image starts while the Node image builds.
        client = client or docker_client()
        results = ensure_lab_image(client, base_image=base_image, rebuild=rebuild, log=log)
        results += [r for r in ensure_node_app_image(client, base_image=base_image, rebuild=rebuild, log=log)
                    if r.tag != BASE_IMAGE]
        return results
    client = client or docker_client()
    results = []
    if base_image is None:
        results.append(ensure_base_image(client, log=log))
        base_image = BASE_IMAGE
    results.append(build_serverless_compat_image(client, base_image=base_image, rebuild=rebuild, log=log))
    return results


def ensure_agent_image(client, image: str, *, pull: bool = True) -> str:
    """A non-lab agent image must already be local or pullable; say how to get it when it is not."""
    import docker.errors

    if image_exists(client, image):
        return image
    hint = (f"On a machine with a registry: `docker pull {image} && docker save {image} -o agent.tar`; "
            f"here: `docker load -i agent.tar`. Or use the lab's emulated agent: --agent-image {LAB_IMAGE}")
    if not pull:
        raise ImageBuildError(f"agent image {image} is not present (pulling is off). {hint}")
    try:
        client.images.pull(image)
        return image
    except docker.errors.APIError as exc:
        raise ImageBuildError(
            f"agent image {image} is not present and cannot be pulled ({exc.explanation or exc}). {hint}"
        ) from None


def _tail(text: str, lines: int = 30) -> str:
    return "\n".join(text.strip().splitlines()[-lines:])


def _click_command():
    import click

    def build(agent: str, rebuild: bool, base_image: str | None) -> None:
        try:
            results = ensure_images(agent, base_image=base_image, rebuild=rebuild, log=click.echo)
        except (DockerUnavailable, ImageBuildError, RuntimeError) as exc:
            raise click.ClickException(str(exc)) from None
        for r in results:
            click.echo(f"{r.tag}: {'built' if r.built else 'cached'} in {r.seconds:.1f}s ({r.image_id[:19]})")

    rebuild_opt = click.option("--rebuild", is_flag=True, help="Build again even when the image is current "
                                                                "(docker's layer cache still applies).")
    base_opt = click.option("--base-image", default=None,
                            help="Build on this local image, not a debootstrap'd one.")

    @click.group("images", invoke_without_command=True)
    @rebuild_opt
    @base_opt
    @click.pass_context
    def images_cmd(ctx: click.Context, rebuild: bool, base_image: str | None) -> None:
        """Build the docker backend's images (Debian base via debootstrap, then ecs-agent-lab/lab and
        ecs-agent-lab/node-app)."""
        if ctx.invoked_subcommand is None:
            build("lab", rebuild, base_image)

    @images_cmd.command("build")
    @click.option("--agent", "agent", default="lab", show_default=True,
                  type=click.Choice(["lab", "emulated", "serverless-compat"]),
                  help="Which agent image: the lab's (emulated agent, fakes, apps; with the Node app's "
                       "image) or serverless-compat "
                       "(ecs-agent-lab/agent-serverless-compat:<installed version>).")
    @rebuild_opt
    @base_opt
    def build_cmd(agent: str, rebuild: bool, base_image: str | None) -> None:
        """Build an agent's image (cached by content: an unchanged image is reused)."""
        build(agent, rebuild, base_image)

    return images_cmd


images_cli = _click_command()


def main(argv: list[str] | None = None) -> int:
    """`python -m lab.backends.images [--rebuild] [--base-image IMG]`: make the images, print timings."""
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rebuild", action="store_true", help="rebuild the lab image (layers stay cached)")
    parser.add_argument("--base-image", default=None, help="build on this local image instead of debootstrap")
    parser.add_argument("--agent", default="lab", help="lab (default) or serverless-compat")
    parser.add_argument("--quiet", action="store_true")
    args = parser.parse_args(argv)
    try:
        results = ensure_images(args.agent, base_image=args.base_image, rebuild=args.rebuild,
                                log=(lambda _m: None) if args.quiet else print)
    except (DockerUnavailable, ImageBuildError, RuntimeError) as exc:
        print(f"error: {exc}")
        return 1
    print(json.dumps([r.__dict__ for r in results], indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
