"""Decoder processes: large trace requests decoded and built on other cores.

The trace-agent decodes requests on several goroutines at once (`apm_config.decoders` of them,
then processes them on more) and so uses every core of its host. A Python process decodes on one
core at a time (one GIL), so the emulated agent hands large requests to worker processes: the
request's body goes to a worker, which decodes it and builds its TracerPayload
(`apm.decode_and_build`), and only the serialized bytes come back. Small requests (a tracer's
flush in a scenario: a few kB) are decoded in the receiving process, where a hand-off would cost
more than it saves; no worker process is started before the first large request.

`LAB_AGENT_APM_DECODER_PROCESSES` (default: the CPUs this process may run on; 0 turns workers
off) and `LAB_AGENT_APM_DECODER_MIN_BYTES` (default 64 KiB) set them (config.py). A worker that
dies is reported once and its requests are decoded in process from then on: no request is lost.
"""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
import os
import signal
import threading
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool

from lab.agent import apm

log = logging.getLogger("lab.agent.decoders")


def _worker_init(parent: int) -> None:
    # Ctrl-C reaches the whole process group: the agent stops its workers itself.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    # An agent killed outright (SIGKILL) cannot stop them, and a worker holds its own end of the
    # task queue, so it would wait forever: it leaves when its parent is gone.
    threading.Thread(
        target=_exit_with_parent, args=(parent,), name="decoder-parent-watch", daemon=True
    ).start()


def _exit_with_parent(parent: int) -> None:
    gone = threading.Event()
    while os.getppid() == parent:
        gone.wait(1.0)
    os._exit(0)


def _ping() -> int:
    return 0


class DecoderPool:
    def __init__(self, processes: int, min_bytes: int) -> None:
        self.processes = max(0, processes)
        self.min_bytes = min_bytes
        self.handed_off = 0
        self.broken: str | None = None
        self._pool: ProcessPoolExecutor | None = None
        self._ready = False
        self._stopped = False
        self._lock = threading.Lock()

    def wants(self, body: bytes) -> bool:
        """Whether this request goes to a worker: a large one, once the workers are up. The first
        large request starts them and is decoded here meanwhile (a worker takes ~0.5 s to start),
        so no request waits for a process to start."""
        if self.processes == 0 or self.broken is not None or len(body) < self.min_bytes:
            return False
        if not self._ready:
            self._start()
            return False
        return True

    def _start(self) -> None:
        with self._lock:
            if self._pool is not None or self._stopped:
                return
            # spawn, not fork: the agent has threads (the server, DogStatsD readers, the ECS
            # refresher) whose locks a forked child would inherit held.
            self._pool = ProcessPoolExecutor(
                self.processes,
                mp_context=multiprocessing.get_context("spawn"),
                initializer=_worker_init,
                initargs=(os.getpid(),),
            )
            # One task per worker: the pool starts a process for each task no idle worker takes.
            pings = [self._pool.submit(_ping) for _ in range(self.processes)]
        left = [len(pings)]

        def done(future) -> None:
            if future.exception() is not None:
                self._break(f"a decoder process did not start: {future.exception()!r}")
                return
            with self._lock:
                left[0] -= 1
                if left[0] == 0:
                    self._ready = True
                    log.info("%d decoder processes ready", self.processes)

        for ping in pings:
            ping.add_done_callback(done)

    def _break(self, reason: str) -> None:
        if self.broken is None:
            self.broken = f"{reason}; decoding in the agent process from now on"
            log.warning(self.broken)

    async def decode_and_build(
        self,
        version: str,
        body: bytes,
        info: apm.TracerInfo,
        tags: list[str],
        default_env: str,
        stats_bucket_ns: int,
    ) -> apm.Built:
        """`apm.decode_and_build` in a worker process (DecodeError comes back as raised there); the
        request's APM stats come back aggregated in `Built.stats`."""
        assert self._pool is not None
        self.handed_off += 1
        args = (version, body, info, tags, default_env, stats_bucket_ns)
        try:
            built = await asyncio.get_running_loop().run_in_executor(self._pool, apm.decode_and_build, *args)
        except BrokenProcessPool as exc:
            self._break(f"a decoder process died ({exc})")
            return apm.decode_and_build(*args)
        return built

    def status(self) -> dict:
        return {
            "processes": self.processes,
            "ready": self._ready,
            "min_bytes": self.min_bytes,
            "requests_handed_off": self.handed_off,
            "broken": self.broken,
        }

    def stop(self) -> None:
        with self._lock:
            pool, self._pool, self._ready, self._stopped = self._pool, None, False, True
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)
