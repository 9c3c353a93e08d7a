"""The control plane starts on a thread while the backend starts on the caller's: the packages both
import on first use are imported before that thread exists (two threads' first imports of requests
deadlock on its import cycle, and Python hands one of them a half-made module)."""

from __future__ import annotations

import subprocess
import sys
import textwrap


def test_requests_is_imported_before_the_control_plane_thread_starts():
    # A fresh interpreter: in this one, requests was imported long ago.
    script = textwrap.dedent("""
        import sys, threading
        import lab.assembly as assembly
        assert "requests" not in sys.modules, "imported at module load: this test proves nothing"
        seen = {}
        real_start = threading.Thread.start

        def start(self):
            if self.name == "lab-control-plane-start":
                seen["requests"] = "requests" in sys.modules and "requests.adapters" in sys.modules
                self.run = lambda: None  # no control plane: only the order is checked
            return real_start(self)

        threading.Thread.start = start
        lab = assembly.EcsLab(control_plane="moto")
        lab._start_control_plane()
        print(seen)
    """)
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "{'requests': True}"
