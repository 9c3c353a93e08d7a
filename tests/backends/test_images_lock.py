"""Making the docker images is one process at a time: a second one waits for the first, then finds
the images made (CI builds them in the background while the tests that need no Docker run).
No Docker needed: this is the lock alone, held by a real second process."""

from __future__ import annotations

import subprocess
import sys
import threading

import pytest

from lab.backends import images
from lab.world import wait_until

HOLDER = """
import sys
from lab.backends import images
with images.images_lock():
    print("held", flush=True)
    sys.stdin.read()
"""


@pytest.fixture
def holder(tmp_path, monkeypatch):
    """Another process that holds the images lock until its stdin closes."""
    lock = tmp_path / "images.lock"
    monkeypatch.setattr(images, "IMAGES_LOCK", lock)
    env = {"LAB_IMAGES_LOCK": str(lock), "PATH": "/usr/bin:/bin", "PYTHONPATH": ":".join(sys.path)}
    proc = subprocess.Popen([sys.executable, "-c", HOLDER], env=env, stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "held"
        yield proc
    finally:
        if proc.poll() is None:
            proc.stdin.close()
            proc.wait(10)


def test_a_second_builder_waits_for_the_first_and_then_gets_the_lock(holder):
    said: list[str] = []
    inside = threading.Event()

    def second() -> None:
        with images.images_lock(log=said.append, timeout=30):
            inside.set()

    waiter = threading.Thread(target=second, daemon=True)
    waiter.start()
    wait_until(lambda: said, 10, what="the second builder to say it waits")
    assert f"pid {holder.pid}" in said[0] and "waiting" in said[0], said
    assert not inside.is_set(), "the lock was taken while another process held it"

    holder.stdin.close()
    assert holder.wait(10) == 0
    wait_until(inside.is_set, 10, what="the second builder to get the lock once the first let go")
    waiter.join(10)


def test_a_builder_that_holds_the_lock_too_long_is_named_in_the_error(holder):
    with pytest.raises(images.ImageBuildError, match=rf"pid {holder.pid} held .*images\.lock"):
        with images.images_lock(timeout=0.5):
            pytest.fail("got the lock while another process held it")
