"""Run one embedded control plane in its own process until stdin closes.

moto's state is one per process and moto's suite resets it before every test, so the suite gets a
control plane of its own, never the one other tests in the pytest process share. Prints the endpoint
on its first line.
"""

from __future__ import annotations

import sys

from lab.ecs.control_plane import ControlPlane


def main() -> None:
    host = sys.argv[1] if len(sys.argv) > 1 else "127.0.0.1"
    with ControlPlane(host=host, port=0) as cp:
        print(cp.endpoint, flush=True)
        sys.stdin.read()  # the parent closes stdin (or dies) to stop us


if __name__ == "__main__":
    main()
