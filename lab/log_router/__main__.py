"""`python -m lab.log_router -c fluent-bit.conf`: the stand-in run the way fluent-bit is run
(`fluent-bit -c <file>`), until SIGTERM/SIGINT, flushing what it holds on the way out as fluent-bit
does. A configuration it cannot run exits 1 with the reason (fluent-bit refuses to start too)."""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from pathlib import Path

from lab.log_router.config import ConfigError
from lab.log_router.router import LogRouter


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="lab.log_router", description=__doc__)
    parser.add_argument("-c", "--config", required=True, help="fluent-bit configuration file")
    args = parser.parse_args(argv)
    path = Path(args.config)
    try:
        router = LogRouter(path.read_text(), base_dir=path.parent)
    except (OSError, ConfigError) as exc:
        print(f"[error] [config] {exc}", file=sys.stderr, flush=True)
        return 1
    done = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: done.set())
    router.start()
    print(f"[ info] [lab.log_router] started: forward inputs on {router.ports or 'unix sockets'}", flush=True)
    try:
        done.wait()
    finally:
        router.stop()
        print(f"[ info] [lab.log_router] stopped: {router.stats()}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
