"""`LogRouter`: the pipeline a fluent-bit configuration describes, run by the lab's stand-in.

Supported: `[SERVICE] Flush` (seconds, default 1 as in fluent-bit), `[INPUT] forward` (Listen/Port,
unix_path), `[FILTER] record_modifier` (Record, Match), `[OUTPUT] datadog` and `[OUTPUT] null`.
Anything else is refused when the router starts (ConfigError naming the plugin), never ignored.
Matching follows fluent-bit's wildcard rule (`*` matches any run of characters).
"""

from __future__ import annotations

import asyncio
import contextlib
import fnmatch
import os
from pathlib import Path
from typing import Any

import aiohttp

from lab.log_router.config import ConfigError, Section, parse
from lab.log_router.datadog_output import DatadogOutput, DatadogOutputConfig, check_lab_target
from lab.log_router.forward import ForwardServer
from lab.serving import ServerThread


class _RecordModifier:
    def __init__(self, section: Section) -> None:
        self.match = section.get("match", "*") or "*"
        self.records: list[tuple[str, str]] = []
        for _, value in section.repeated:
            key, _, val = value.partition(" ")
            if not key:
                raise ConfigError("record_modifier: empty Record")
            self.records.append((key, val.strip()))

    def apply(self, tag: str, record: dict[str, Any]) -> dict[str, Any]:
        if not fnmatch.fnmatchcase(tag, self.match):
            return record
        return {**record, **dict(self.records)}


class LogRouter:
    """Runs the configuration in `config_text` on its own event-loop thread until stop()."""

    def __init__(self, config_text: str, base_dir: Path | None = None,
                 allowed_hosts: frozenset[str] = frozenset()) -> None:
        self.sections = parse(config_text, base_dir)
        self.flush_interval = 1.0
        self.inputs: list[Section] = []
        self.filters: list[_RecordModifier] = []
        self.outputs: list[tuple[str, DatadogOutput | None]] = []  # (match, output or None for null)
        for s in self.sections:
            name = s.name.lower()
            if s.kind == "SERVICE":
                self.flush_interval = float(s.get("flush", "1") or 1)
            elif s.kind == "INPUT" and name == "forward":
                self.inputs.append(s)
            elif s.kind == "FILTER" and name == "record_modifier":
                self.filters.append(_RecordModifier(s))
            elif s.kind == "OUTPUT" and name == "datadog":
                cfg = DatadogOutputConfig.from_section(s)
                check_lab_target(cfg.host, allowed_hosts)
                self.outputs.append((cfg.match, DatadogOutput(cfg)))
            elif s.kind == "OUTPUT" and name == "null":
                self.outputs.append((s.get("match", "*") or "*", None))
            else:
                raise ConfigError(f"[{s.kind}] {s.name or '(no Name)'} is not supported by the lab's log "
                                  "router (forward inputs, record_modifier, datadog and null outputs are)")
        if not self.inputs:
            raise ConfigError("the configuration has no forward input: nothing could reach the router")
        self.forward = ForwardServer(self._route)
        self.ports: list[int] = []
        self.unmatched = 0
        self._thread = ServerThread("log-router")
        self._session: aiohttp.ClientSession | None = None
        self._flusher: asyncio.Task | None = None
        self._unix_paths: list[str] = []

    # -- pipeline ---------------------------------------------------------------------------------
    def _route(self, tag: str, entries: list[tuple[float, dict[str, Any]]]) -> None:
        for f in self.filters:
            entries = [(t, f.apply(tag, rec)) for t, rec in entries]
        matched = False
        for match, output in self.outputs:
            if fnmatch.fnmatchcase(tag, match):
                matched = True
                if output is not None:
                    output.add(tag, entries)
        if not matched:
            self.unmatched += len(entries)

    async def _flush_all(self) -> None:
        assert self._session is not None
        await asyncio.gather(*(o.flush(self._session) for _, o in self.outputs if o is not None))

    async def _flush_loop(self) -> None:
        while True:
            await asyncio.sleep(self.flush_interval)
            await self._flush_all()

    # -- lifecycle --------------------------------------------------------------------------------
    def start(self) -> LogRouter:
        async def _start() -> None:
            self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10), trust_env=False)
            for s in self.inputs:
                if s.get("unix_path"):
                    path = s.get("unix_path") or ""
                    with contextlib.suppress(FileNotFoundError):
                        os.unlink(path)
                    await self.forward.listen_unix(path)
                    self._unix_paths.append(path)
                else:
                    port = int(s.get("port", "24224") or 24224)
                    listen = s.get("listen", "0.0.0.0") or "0.0.0.0"
                    self.ports.append(await self.forward.listen_tcp(listen, port))
            self._flusher = asyncio.create_task(self._flush_loop())

        self._thread.start()
        try:
            self._thread.call(_start)
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        """Stop listening, flush what is buffered (fluent-bit flushes on SIGTERM), close."""
        async def _stop() -> None:
            await self.forward.close()
            if self._flusher is not None:
                self._flusher.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await self._flusher
            if self._session is not None:
                await self._flush_all()
                await self._session.close()

        try:
            self._thread.call(_stop, timeout=30)
        finally:
            self._thread.stop()
            for path in self._unix_paths:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(path)

    def __enter__(self) -> LogRouter:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def stats(self) -> dict[str, Any]:
        return {"received": self.forward.received, "forward_errors": self.forward.errors,
                "unmatched": self.unmatched,
                "outputs": [{"match": m, **o.stats, "last_error": o.last_error}
                            for m, o in self.outputs if o is not None]}
