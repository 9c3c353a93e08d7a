"""The intake's memory: every payload the agent sent, in arrival order, socket-free.

- Every accepted payload gets a sequence number (monotonic, never reused, also across flushes):
  queries take `since=<seq>` and see only what came after, so a test can poll without rereading.
- Bodies are validated on arrival (decompressed and parsed by the route's decoder) and kept raw;
  the decoded JSON view is rendered on query and cached for the most recent payloads. That keeps
  ingest cheap and memory close to the size of the compressed bodies.
- Sessions isolate one test's data: a session sees the payloads tagged with its id (a
  `/session/<id>/...` URL prefix or an `X-Lab-Session` header) and the untagged payloads that
  arrived while it was open. Payloads tagged for another session stay invisible to it.
- Memory is bounded by a payload count and a byte budget. When either is exceeded the oldest
  payloads are evicted first, and every eviction is counted per route (route stats show it and a
  query whose cursor reaches into evicted payloads says so): nothing is dropped silently.
- A body the route cannot carry is rejected (the server answers 400 with the reason), counted
  per route, and kept in a separate bounded list for inspection.
"""

from __future__ import annotations

import itertools
import threading
import time
import uuid
from collections import OrderedDict, deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from lab.fakes.intake.decode import DecodedPayload, MalformedPayload, decoder_for

INGEST_MODES = ("full", "fast")
DEFAULT_MAX_PAYLOADS = 100_000
DEFAULT_MAX_BYTES = 1024 * 1024 * 1024
DEFAULT_MAX_REJECTED = 1_000
# Rendered views of recent payloads are cached for repeated queries (a test polling), bounded by
# count and by an estimate of their size: a rendered view takes ~50-100x its compressed body.
DEFAULT_DECODED_CACHE = 512
DEFAULT_DECODED_CACHE_BYTES = 256 * 1024 * 1024
CACHE_WEIGHT_PER_BODY_BYTE = 64
# Rejected bodies are kept for a look, not for replay: cap what one of them may hold.
MAX_REJECTED_BODY = 1024 * 1024
# Per-payload bookkeeping (record object, headers dict, deque slots) counted against max_bytes.
RECORD_OVERHEAD = 512


class UnsupportedFilter(ValueError):
    pass


class UnknownSession(KeyError):
    pass


@dataclass(eq=False)
class StoredPayload:
    seq: int
    route: str
    received: float
    headers: dict[str, str] = field(repr=False)
    body: bytes = field(repr=False)
    kind: str = "raw"
    session: str | None = None
    method: str = "POST"
    flags: tuple[str, ...] = ()
    # The answer the intake gave this payload: its HTTP status, and how long it held the answer
    # back (a slow outage); a payload answered with an error is never stored.
    answer: int = 0
    answer_delay_ms: int = 0
    # The Datadog site the payload was sent for (the listener it arrived on), and the host the
    # agent would have sent it to there; "" when it came in on the lab's own (site-less) listener.
    site: str = ""
    intended_host: str = ""

    def header(self, name: str, default: str = "") -> str:
        lname = name.lower()
        for key, value in self.headers.items():
            if key.lower() == lname:
                return value
        return default

    @property
    def content_type(self) -> str:
        return self.header("Content-Type")

    @property
    def encoding(self) -> str:
        # fakeintake's `encoding`: Content-Encoding, or the Content-Type when there is none.
        return self.header("Content-Encoding") or self.content_type

    @property
    def api_key(self) -> str:
        # The process agent's own sender names it X-Dd-APIKey; every other sender DD-API-KEY.
        return self.header("DD-API-KEY") or self.header("X-Dd-APIKey")

    @property
    def size(self) -> int:
        return len(self.body) + RECORD_OVERHEAD + sum(len(k) + len(v) for k, v in self.headers.items())


@dataclass(eq=False)
class RejectedPayload:
    seq: int
    route: str
    received: float
    headers: dict[str, str] = field(repr=False)
    body: bytes = field(repr=False)
    reason: str = ""
    session: str | None = None
    body_truncated: bool = False


@dataclass
class IngestResult:
    accepted: bool
    seq: int
    route: str
    reason: str = ""
    flags: tuple[str, ...] = ()


@dataclass
class Selection:
    items: list[tuple[StoredPayload, Any]]
    # Pass as `since` next time to see only newer payloads.
    cursor: int
    # Payloads newer than the `since` given were evicted before this read: the reader missed some.
    evicted_after_cursor: bool = False


@dataclass
class RouteCounters:
    accepted: int = 0
    rejected: int = 0
    evicted: int = 0
    flushed: int = 0
    stored: int = 0
    stored_bytes: int = 0
    flagged: int = 0
    decode_errors: int = 0
    # POSTs answered with an error by an outage or an override, nothing stored (the agent retries).
    answered_not_stored: int = 0
    # POSTs whose client gave up before a slow answer: nothing stored.
    abandoned: int = 0
    # POSTs answered 403 for an API key the site does not know: nothing stored.
    forbidden: int = 0
    last_evicted_seq: int = 0

    def as_dict(self) -> dict[str, int]:
        return {
            "count": self.stored, "accepted": self.accepted, "rejected": self.rejected,
            "evicted": self.evicted, "flushed": self.flushed, "flagged": self.flagged,
            "decode_errors": self.decode_errors, "stored_bytes": self.stored_bytes,
            "answered_not_stored": self.answered_not_stored, "abandoned": self.abandoned,
            "forbidden": self.forbidden,
        }


@dataclass
class Session:
    id: str
    opened_seq: int
    opened_at: float
    label: str = ""
    closed_seq: int | None = None

    def sees(self, seq: int, tagged: str | None) -> bool:
        if tagged is not None:
            return tagged == self.id
        if seq <= self.opened_seq:
            return False
        return self.closed_seq is None or seq <= self.closed_seq

    def as_dict(self) -> dict[str, Any]:
        return {"id": self.id, "label": self.label, "opened_seq": self.opened_seq,
                "opened_at": self.opened_at, "closed_seq": self.closed_seq}


class IntakeStore:
    """All payloads received, bounded, with counted eviction. Thread-safe.

    `ingest="full"` (default) decodes every body on arrival, so anything malformed is refused
    with a 400. `ingest="fast"` checks compression and the protobuf's top-level framing only for
    the costly kinds (series, sketches, traces) and decodes them when queried; a body that passes
    the check but fails the full decode is then flagged `decode error: ...` and counted in
    `decode_errors`, never dropped.
    """

    def __init__(self, max_payloads: int = DEFAULT_MAX_PAYLOADS, max_bytes: int = DEFAULT_MAX_BYTES,
                 max_rejected: int = DEFAULT_MAX_REJECTED, decoded_cache: int = DEFAULT_DECODED_CACHE,
                 decoded_cache_bytes: int = DEFAULT_DECODED_CACHE_BYTES,
                 clock: Callable[[], float] = time.time, ingest: str = "full") -> None:
        if max_payloads < 1 or max_bytes < 1:
            raise ValueError("max_payloads and max_bytes must be positive")
        if ingest not in INGEST_MODES:
            raise ValueError(f"ingest must be one of {', '.join(INGEST_MODES)}, not {ingest!r}")
        self.ingest_mode = ingest
        self.max_payloads = max_payloads
        self.max_bytes = max_bytes
        self.max_rejected = max_rejected
        self.decoded_cache_size = decoded_cache
        self.clock = clock
        self._lock = threading.RLock()
        self._seq = itertools.count(1)
        self._last_seq = 0
        self._order: deque[StoredPayload] = deque()
        self._by_route: dict[str, deque[StoredPayload]] = {}
        self._bytes = 0
        self._counters: dict[str, RouteCounters] = {}
        self._rejected: deque[RejectedPayload] = deque()
        self.rejected_dropped = 0  # rejected payloads pushed out of the inspection list (counted)
        self._sessions: dict[str, Session] = {}
        self._decoded: OrderedDict[int, DecodedPayload] = OrderedDict()
        self._decoded_weights: dict[int, int] = {}
        self._decoded_weight = 0
        self.decoded_cache_bytes = decoded_cache_bytes

    # --- ingest -----------------------------------------------------------------------------------

    def ingest(self, route: str, body: bytes, headers: Mapping[str, str] | None = None,
               method: str = "POST", session: str | None = None,
               received: float | None = None, answer: int = 0, answer_delay_ms: int = 0,
               site: str = "", intended_host: str = "") -> IngestResult:
        """Validate and keep one payload; a malformed one is counted and kept aside, never stored.
        `answer` (and `answer_delay_ms`) mark the stored payload with the answer it is given."""
        headers = dict(headers or {})
        received = self.clock() if received is None else received
        decoder = decoder_for(route)
        kind, flags, reason = "raw", (), ""
        if decoder is not None:
            kind = decoder.kind
            try:
                if self.ingest_mode == "fast" and decoder.check is not None:
                    decoder.check(body, headers)
                else:
                    flags = decoder.decode(body, headers).flags
            except MalformedPayload as exc:
                reason = exc.reason
        with self._lock:
            seq = next(self._seq)
            self._last_seq = seq
            counters = self._counters.setdefault(route, RouteCounters())
            if reason:
                counters.rejected += 1
                self._keep_rejected(RejectedPayload(
                    seq, route, received, headers, body[:MAX_REJECTED_BODY], reason, session,
                    body_truncated=len(body) > MAX_REJECTED_BODY))
                return IngestResult(False, seq, route, reason)
            record = StoredPayload(seq, route, received, headers, bytes(body), kind, session, method, flags,
                                   answer, answer_delay_ms, site, intended_host)
            self._order.append(record)
            self._by_route.setdefault(route, deque()).append(record)
            size = record.size
            self._bytes += size
            counters.accepted += 1
            counters.stored += 1
            counters.stored_bytes += size
            if flags:
                counters.flagged += 1
            self._evict()
            return IngestResult(True, seq, route, flags=flags)

    def count_not_stored(self, route: str, why: str) -> None:
        """Count a POST the intake answered without storing it: `why` is "answered_not_stored" (an
        outage's or override's error answer), "abandoned" (the connection closed before the answer: the
        client left before a slow answer, or a refusal began under the request) or
        "forbidden" (403: an API key the site does not know)."""
        if why not in ("answered_not_stored", "abandoned", "forbidden"):
            raise ValueError(f"unknown reason {why!r}")
        with self._lock:
            counters = self._counters.setdefault(route, RouteCounters())
            setattr(counters, why, getattr(counters, why) + 1)

    def refuse(self, route: str, body: bytes, headers: Mapping[str, str] | None, reason: str,
               session: str | None = None, *, count: bool = True) -> None:
        """Keep aside (and count as rejected, unless the caller counted it otherwise) a payload the
        intake refused whole (not malformed: not accepted, e.g. an API key of another site's
        organization), so `/fakeintake/rejected` says why."""
        with self._lock:
            seq = next(self._seq)
            self._last_seq = seq
            if count:
                self._counters.setdefault(route, RouteCounters()).rejected += 1
            self._keep_rejected(RejectedPayload(
                seq, route, self.clock(), dict(headers or {}), body[:MAX_REJECTED_BODY], reason, session,
                body_truncated=len(body) > MAX_REJECTED_BODY))

    def _keep_rejected(self, rejected: RejectedPayload) -> None:
        self._rejected.append(rejected)
        while len(self._rejected) > self.max_rejected:
            self._rejected.popleft()
            self.rejected_dropped += 1

    def _evict(self) -> None:
        while self._order and (len(self._order) > self.max_payloads or self._bytes > self.max_bytes):
            record = self._order.popleft()
            self._by_route[record.route].popleft()
            self._forget(record)
            counters = self._counters[record.route]
            counters.evicted += 1
            counters.last_evicted_seq = record.seq

    def _forget(self, record: StoredPayload) -> None:
        size = record.size
        self._bytes -= size
        counters = self._counters[record.route]
        counters.stored -= 1
        counters.stored_bytes -= size
        if self._decoded.pop(record.seq, None) is not None:
            self._decoded_weight -= self._decoded_weights.pop(record.seq)

    # --- reading ----------------------------------------------------------------------------------

    @property
    def last_seq(self) -> int:
        return self._last_seq

    @property
    def stored_bytes(self) -> int:
        return self._bytes

    def __len__(self) -> int:
        return len(self._order)

    def session(self, session_id: str) -> Session:
        try:
            return self._sessions[session_id]
        except KeyError:
            raise UnknownSession(session_id) from None

    def payloads(self, route: str | None = None, since: int | None = None,
                 session: str | None = None) -> list[StoredPayload]:
        """Stored payloads in arrival order, optionally one route's, after `since`, in a session."""
        return self.snapshot(route, since, session)[0]

    def snapshot(self, route: str | None = None, since: int | None = None, session: str | None = None,
                 limit: int | None = None) -> tuple[list[StoredPayload], int]:
        """(payloads, cursor): the cursor is the last sequence number at the time of the snapshot,
        so `since=cursor` next time returns exactly what arrived after, with no gap or repeat.
        With `limit`, at most that many payloads and the cursor is the last one returned."""
        sess = self.session(session) if session else None
        with self._lock:
            source: Iterable[StoredPayload] = self._order if route is None else self._by_route.get(route, ())
            records = list(source)
            cursor = self._last_seq
        if since:
            # Records are in seq order: skip the prefix at or before the cursor.
            lo, hi = 0, len(records)
            while lo < hi:
                mid = (lo + hi) // 2
                if records[mid].seq <= since:
                    lo = mid + 1
                else:
                    hi = mid
            records = records[lo:]
        if sess is not None:
            records = [r for r in records if sess.sees(r.seq, r.session)]
        if limit is not None and len(records) > limit:
            records = records[:limit]
            cursor = records[-1].seq if records else (since or 0)
        return records, cursor

    def _parse(self, record: StoredPayload) -> DecodedPayload:
        """Decode a stored body again (not rendered); a failure becomes this payload's flagged,
        counted decode error (possible with fast ingest, which only checked the framing)."""
        decoder = decoder_for(record.route)
        assert decoder is not None
        try:
            return decoder.decode(record.body, record.headers)
        except MalformedPayload as exc:
            return self._decode_error(record, decoder.kind, exc.reason)

    def _decode_error(self, record: StoredPayload, kind: str, reason: str) -> DecodedPayload:
        flag = f"decode error: {reason}"
        with self._lock:
            if flag not in record.flags:
                record.flags = (*record.flags, flag)
                counters = self._counters.get(record.route)
                if counters is not None:
                    counters.decode_errors += 1
        return DecodedPayload(kind, None, lambda _native: None, flags=(flag,))

    def _cached(self, seq: int) -> DecodedPayload | None:
        with self._lock:
            cached = self._decoded.get(seq)
            if cached is not None:
                self._decoded.move_to_end(seq)
            return cached

    def decoded(self, record: StoredPayload) -> DecodedPayload | None:
        """The decoded payload (rendered lazily, cached for recent payloads); None for raw routes."""
        if decoder_for(record.route) is None:
            return None
        cached = self._cached(record.seq)
        if cached is not None:
            return cached
        decoded = self._parse(record)
        if decoded.native is not None:
            try:
                _ = decoded.data
            except Exception as exc:  # noqa: BLE001 - a body that cannot be rendered is a decode error too
                decoded = self._decode_error(record, decoded.kind, f"{type(exc).__name__}: {exc}")
            # The rendered view is all queries need: let the parsed message (and its arena) go.
            decoded.native = None
        weight = len(record.body) * CACHE_WEIGHT_PER_BODY_BYTE
        with self._lock:
            if self.decoded_cache_size > 0 and weight <= self.decoded_cache_bytes:
                self._decoded[record.seq] = decoded
                self._decoded_weights[record.seq] = weight
                self._decoded_weight += weight
                while (len(self._decoded) > self.decoded_cache_size
                       or self._decoded_weight > self.decoded_cache_bytes):
                    old, _ = self._decoded.popitem(last=False)
                    self._decoded_weight -= self._decoded_weights.pop(old)
        return decoded

    def check_filters(self, route: str, filters: Mapping[str, Any]) -> dict[str, Any]:
        """Drop empty filters; raise UnsupportedFilter for one the route's kind cannot apply."""
        active = {k: v for k, v in filters.items() if v not in (None, "", (), [])}
        if not active:
            return {}
        decoder = decoder_for(route)
        supported = decoder.filters if decoder else frozenset()
        unknown = sorted(set(active) - supported)
        if unknown:
            kind = decoder.kind if decoder else "raw"
            raise UnsupportedFilter(
                f"filter {', '.join(unknown)} does not apply to {route} ({kind}); "
                f"supported: {', '.join(sorted(supported)) or 'none'}")
        return active

    def select(self, route: str, since: int | None = None, session: str | None = None,
               filters: Mapping[str, Any] | None = None, limit: int | None = None) -> Selection:
        """Each payload with something matching `filters`, with its decoded data narrowed to the
        matching items (series, traces with a matching span, check runs, log entries...)."""
        decoder = decoder_for(route)
        if decoder is None:
            raise UnsupportedFilter(f"{route} has no decoder: only the raw format is available")
        active = self.check_filters(route, filters or {})
        records, cursor = self.snapshot(route, since, session, limit)
        items = []
        for record in records:
            if active and decoder.select_native is not None and self._cached(record.seq) is None:
                # Filter on the parsed message and render only what matches: a metric-name query
                # over payloads of hundreds of series renders one series each, not all of them.
                parsed = self._parse(record)
                if parsed.native is None:
                    continue
                data = decoder.select_native(parsed.native, active)
                if data is not None:
                    items.append((record, data))
                continue
            data = self.decoded(record).data
            if data is None:
                if not active:
                    items.append((record, None))
                continue
            if active:
                data = decoder.select(data, active)
                if data is None:
                    continue
            items.append((record, data))
        return Selection(items, cursor, self.evicted_after(route, since))

    def evicted_after(self, route: str, since: int | None) -> bool:
        """True when payloads newer than the cursor were evicted (the reader missed some)."""
        counters = self._counters.get(route)
        return bool(counters and counters.last_evicted_seq > (since or 0))

    def rejected(self, route: str | None = None, session: str | None = None) -> list[RejectedPayload]:
        sess = self.session(session) if session else None
        with self._lock:
            items = list(self._rejected)
        return [r for r in items
                if (route is None or r.route == route) and (sess is None or sess.sees(r.seq, r.session))]

    def route_stats(self, session: str | None = None) -> dict[str, dict[str, int]]:
        """Per route: `count` (stored now, as fakeintake reports) and the lab's lifetime counters
        accepted / rejected / evicted / flushed / flagged. accepted = count + evicted + flushed."""
        with self._lock:
            stats = {route: c.as_dict() for route, c in self._counters.items()}
        if session:
            visible: dict[str, dict[str, int]] = {}
            for record in self.payloads(session=session):
                entry = visible.setdefault(record.route, {"count": 0, "rejected": 0, "stored_bytes": 0})
                entry["count"] += 1
                entry["stored_bytes"] += record.size
            for rej in self.rejected(session=session):
                entry = visible.setdefault(rej.route, {"count": 0, "rejected": 0, "stored_bytes": 0})
                entry["rejected"] += 1
            return visible
        return stats

    def totals(self) -> dict[str, int]:
        with self._lock:
            out = {"count": len(self._order), "stored_bytes": self._bytes, "last_seq": self._last_seq,
                   "max_payloads": self.max_payloads, "max_bytes": self.max_bytes,
                   "rejected_kept": len(self._rejected), "rejected_dropped": self.rejected_dropped}
            for key in ("accepted", "rejected", "evicted", "flushed", "flagged", "decode_errors",
                        "answered_not_stored", "abandoned", "forbidden"):
                out[key] = sum(getattr(c, key) for c in self._counters.values())
        return out

    # --- control ----------------------------------------------------------------------------------

    def flush(self, session: str | None = None) -> int:
        """Forget stored payloads (all of them, or only those a session sees); counted as flushed."""
        sess = self.session(session) if session else None
        with self._lock:
            if sess is None:
                gone = list(self._order)
                self._order.clear()
                self._by_route.clear()
                self._rejected.clear()
            else:
                gone = [r for r in self._order if sess.sees(r.seq, r.session)]
                gone_ids = {id(r) for r in gone}
                self._order = deque(r for r in self._order if id(r) not in gone_ids)
                for route, records in list(self._by_route.items()):
                    self._by_route[route] = deque(r for r in records if id(r) not in gone_ids)
                self._rejected = deque(r for r in self._rejected if not sess.sees(r.seq, r.session))
            for record in gone:
                self._forget(record)
                self._counters[record.route].flushed += 1
        return len(gone)

    def open_session(self, label: str = "", session_id: str | None = None) -> Session:
        with self._lock:
            sid = session_id or uuid.uuid4().hex[:12]
            if sid in self._sessions:
                raise ValueError(f"session {sid} already exists")
            sess = Session(sid, self._last_seq, self.clock(), label)
            self._sessions[sid] = sess
            return sess

    def close_session(self, session_id: str) -> Session:
        with self._lock:
            sess = self.session(session_id)
            if sess.closed_seq is None:
                sess.closed_seq = self._last_seq
            return sess

    def sessions(self) -> list[Session]:
        with self._lock:
            return list(self._sessions.values())
