"""What the docker images are built from, and which image the Node app's task definition names.

No Docker needed: the build context and source hash are computed from a copy of the repo's image
inputs, and the task definitions are data.
"""

from __future__ import annotations

import shutil
import tarfile
from pathlib import Path

import pytest

from lab.apps import node_app
from lab.backends import images
from lab.tasks import LAB_IMAGE, NODE_APP_IMAGE, is_node_app_image


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    """The Node app's image inputs, copied (the real tree may hold a developer's node_modules)."""
    for rel in images.NODE_APP_PATHS:
        dest = tmp_path / rel
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(images.REPO_ROOT / rel, dest)
    return tmp_path


def test_a_local_npm_install_is_no_image_input(tree):
    """The local backend `npm ci`s into lab/apps/node/node_modules; that must neither make the images
    stale (a rebuild per checkout) nor ride along in their build context (megabytes of modules)."""
    paths = ("lab", "docker")
    before = images.source_hash(tree, paths)
    modules = tree / "lab/apps/node/node_modules/dd-trace"
    modules.mkdir(parents=True)
    (modules / "index.js").write_text("module.exports = {}\n")
    (tree / "lab/apps/node/.install.lock").write_text("")
    assert images.source_hash(tree, paths) == before
    with tarfile.open(fileobj=images.build_context(tree, paths=paths)) as tar:
        names = tar.getnames()
    assert "lab/apps/node/app.js" in names and "docker/node-app.Dockerfile" in names
    assert not [n for n in names if "node_modules" in n or n.endswith(".lock")], names
    # A real input still counts.
    (tree / "lab/apps/node/app.js").write_text("// changed\n")
    assert images.source_hash(tree, paths) != before


def test_the_node_image_is_built_from_the_app_and_its_lock_file():
    dockerfile = (images.REPO_ROOT / images.NODE_APP_DOCKERFILE).read_text()
    # Everything the Dockerfile COPYs from the repo is an input of its hash (else a stale image stays).
    copied = {word for line in dockerfile.splitlines() if line.startswith("COPY ") and "--from" not in line
              for word in line.split()[1:-1] if word.startswith("lab/")}
    assert copied and copied <= set(images.NODE_APP_PATHS), copied
    assert "npm ci" in dockerfile and "--ignore-scripts" in dockerfile


def test_the_node_task_definition_names_the_image_its_backend_runs():
    local = node_app.task_definition()["containerDefinitions"][0]
    assert local["image"] == LAB_IMAGE and local["workingDirectory"] == str(node_app.NODE_APP_DIR)
    docker = node_app.task_definition(backend="docker")["containerDefinitions"][0]
    assert is_node_app_image(docker["image"]) and docker["image"] == NODE_APP_IMAGE
    assert docker["workingDirectory"] == node_app.IMAGE_APP_DIR
    assert docker["command"] == local["command"] == ["node", "app.js"]
    with pytest.raises(ValueError, match="backend 'k8s'"):
        node_app.task_definition(backend="k8s")
    with pytest.raises(ValueError, match="only the local backend"):
        node_app.task_definition(backend="docker", app_dir=Path("/elsewhere"))
