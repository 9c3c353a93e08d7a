"""The EC2 instance metadata service (IMDS) as plain objects: no sockets here.

What this reproduces, and where the behaviour comes from:

- IMDSv1 (`GET` with no token) and IMDSv2 (`PUT /latest/api/token` with
  `X-aws-ec2-metadata-token-ttl-seconds`, then `X-aws-ec2-metadata-token` on every `GET`). Status
  codes follow the AWS EC2 user guide's "Instance metadata access: response codes" (also on AWS
  re:Post "How can I troubleshoot instance metadata issues on my EC2 Linux instance?"):
  400 = the PUT is not valid (TTL missing or outside 1..21600), 401 = the GET carries an invalid or
  expired token (or none while tokens are required), 403 = the request is not allowed or IMDS is
  turned off (`HttpEndpoint=disabled`), 404 = no such item, 503 = throttled.
- A token is only good on the instance that issued it: each instance has its own token store.
- `PUT /latest/api/token` answered with 405 and `Allow: OPTIONS, PUT` to any other method (what a
  plain `curl` GET of the token URL gets on EC2, quoted in googleapis/google-auth-library-ruby#421).
  botocore treats 403/404/405 on the PUT as "no IMDSv2 here" and falls back to v1, 400 as a bug.
- A token PUT on a versioned path (`/2021-07-15/api/token`) is refused with 403
  (awsdocs/amazon-ec2-user-guide#182: tokens come only from `/latest/api/token`).
- A request carrying `X-Forwarded-For` gets no token (403): IMDSv2 refuses sessions requested
  through proxies (AWS security blog "Add defense in depth against open firewalls, reverse proxies,
  and SSRF vulnerabilities with enhancements to the EC2 IMDS"); a GET that uses a token and carries
  `X-Forwarded-For` is refused too (kube2iam#279 saw those 403s). Plain v1 GETs are not checked.
- The hop limit (`HttpPutResponseHopLimit`, 1..64) is enforced on EC2 through the IP TTL of the
  token PUT's response: a caller more hops away than the limit gets its token issued but never
  receives it (the AWS EC2 user guide, "Configure the instance metadata options": containers in
  bridge mode are one hop further and need a limit of 2). A userspace server cannot see a TTL, so
  the distance is the listener's: a request carries `hops` (1 = on the instance itself), set by the
  listener it arrived on (the local backend serves bridge-mode containers on a listener of their
  own, 2 hops away: docs/imds.md#hop-limit). A token PUT from further than the limit is dropped
  without an answer: the client's curl gets an empty reply and no token, as it would get none on
  EC2 (where it would wait for its own timeout first).

Every value an instance answers comes from `lab.world.ContainerInstance`, so the identity
document, `local-ipv4`, `hostname`, the MAC tree and the AZ describe one instance.

The lab's own additions live under `/ecs-lab/` (see server.py): faults (delay / status / drop per
path, switchable at run time) and per-path request counts, so a scenario can assert who asked what.
"""

from __future__ import annotations

import base64
import fnmatch
import hashlib
import ipaddress
import itertools
import json
import secrets
import threading
import time
from collections import Counter, deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime

from lab.world import ContainerInstance, World

TOKEN_PATH = "/latest/api/token"
TOKEN_HEADER = "x-aws-ec2-metadata-token"
TTL_HEADER = "x-aws-ec2-metadata-token-ttl-seconds"
TTL_HEADER_WIRE = "X-aws-ec2-metadata-token-ttl-seconds"
MIN_TOKEN_TTL = 1
MAX_TOKEN_TTL = 21600
# Tokens live at most 6 h, but a client may ask for one per call (botocore does): bound the store.
MAX_TOKENS_PER_INSTANCE = 50_000

# What `GET /` lists on EC2: every metadata version, oldest first, then `latest`.
METADATA_VERSIONS = (
    "1.0", "2007-01-19", "2007-03-01", "2007-08-29", "2007-10-10", "2007-12-15", "2008-02-01",
    "2008-09-01", "2009-04-04", "2011-01-01", "2011-05-01", "2012-01-12", "2014-02-25",
    "2014-11-05", "2015-10-20", "2016-04-19", "2016-06-30", "2016-09-02", "2018-03-28",
    "2018-08-17", "2018-09-24", "2019-10-01", "2020-10-27", "2021-01-03", "2021-03-23",
    "2021-07-15", "2022-09-24", "2024-04-11", "latest",
)

# IMDS answers errors with a small XHTML page (status in the title), as text/html.
_ERROR_PAGE = (
    '<?xml version="1.0" encoding="iso-8859-1"?>\n'
    '<!DOCTYPE html PUBLIC "-//W3C//DTD XHTML 1.0 Transitional//EN"\n'
    '\t"http://www.w3.org/TR/xhtml1/DTD/xhtml1-transitional.dtd">\n'
    '<html xmlns="http://www.w3.org/1999/xhtml" xml:lang="en" lang="en">\n'
    " <head>\n  <title>{status} - {reason}</title>\n </head>\n"
    " <body>\n  <h1>{status} - {reason}</h1>\n </body>\n</html>\n"
)
_REASONS = {400: "Bad Request", 401: "Unauthorized", 403: "Forbidden", 404: "Not Found",
            405: "Method Not Allowed", 429: "Too Many Requests", 500: "Internal Server Error",
            502: "Bad Gateway", 503: "Service Unavailable", 504: "Gateway Timeout"}

_REGION_DIRECTIONS = {"north": "n", "south": "s", "east": "e", "west": "w", "central": "c",
                      "northeast": "ne", "southeast": "se", "northwest": "nw", "southwest": "sw"}


def reason(status: int) -> str:
    return _REASONS.get(status, "Error")


def _stable(seed: str, length: int, alphabet: str = "0123456789abcdef") -> str:
    digest = hashlib.sha256(seed.encode()).digest()
    while len(digest) < length:
        digest += hashlib.sha256(digest).digest()
    return "".join(alphabet[b % len(alphabet)] for b in digest[:length])


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _imds_json(doc: Mapping) -> str:
    # EC2 pretty-prints its JSON with `"key" : value` and two-space indents.
    return json.dumps(doc, indent=2, separators=(",", " : "))


class ManualClock:
    """A clock tests advance by hand, so token expiry is proven without sleeping."""

    def __init__(self, start: float | None = None) -> None:
        self.now = time.time() if start is None else start
        self._lock = threading.Lock()

    def __call__(self) -> float:
        with self._lock:
            return self.now

    def advance(self, seconds: float) -> None:
        with self._lock:
            self.now += seconds


# -- requests and answers ---------------------------------------------------------------------------
@dataclass
class ImdsRequest:
    method: str
    path: str
    headers: Mapping[str, str] = field(default_factory=dict)
    peer: str | None = None
    # How many IP hops the caller is from the instance (1: on the instance, or a host-mode container).
    hops: int = 1

    def __post_init__(self) -> None:
        # HTTP header names are case-insensitive; clients differ (botocore sends them lowercase).
        self.headers = {k.lower(): v for k, v in self.headers.items()}

    def header(self, name: str) -> str | None:
        return self.headers.get(name.lower())


@dataclass
class ImdsAnswer:
    status: int
    body: str = ""
    content_type: str = "text/plain"
    headers: dict[str, str] = field(default_factory=dict)
    # Set by faults: the wire layer waits `delay` seconds, then answers or closes without answer.
    delay: float = 0.0
    drop: bool = False
    # Why the lab answered this way (logged, and sent as X-Ecs-Lab-Reason on lab-made errors).
    note: str = ""
    imds_version: str = ""
    instance_id: str | None = None


def error(status: int, note: str = "", **headers: str) -> ImdsAnswer:
    return ImdsAnswer(status, _ERROR_PAGE.format(status=status, reason=reason(status)), "text/html",
                      dict(headers), note=note)


# -- faults -------------------------------------------------------------------------------------------
@dataclass
class Fault:
    """A resilience-test rule: requests whose path matches `path` (an fnmatch glob) on `instance_id`
    (None = every instance) are delayed, answered with `status`, or dropped (connection closed with
    no answer, what a client sees when IMDS is unreachable mid-request). `times` limits how often the
    rule fires (None = until removed)."""

    path: str = "*"
    instance_id: str | None = None
    method: str | None = None
    delay: float = 0.0
    status: int | None = None
    drop: bool = False
    times: int | None = None
    id: int = 0
    hits: int = 0

    def __post_init__(self) -> None:
        if self.status is not None and not 100 <= int(self.status) <= 599:
            raise ValueError(f"fault status must be an HTTP status (100..599), got {self.status!r}")
        if self.delay < 0:
            raise ValueError(f"fault delay must be >= 0 seconds, got {self.delay!r}")
        if self.times is not None and self.times < 1:
            raise ValueError(f"fault times must be >= 1 or absent, got {self.times!r}")
        if not (self.delay or self.status or self.drop):
            raise ValueError("a fault needs at least one of delay, status or drop")

    def matches(self, instance_id: str | None, method: str, path: str) -> bool:
        if self.instance_id is not None and self.instance_id != instance_id:
            return False
        if self.method is not None and self.method.upper() != method.upper():
            return False
        return fnmatch.fnmatchcase(path, self.path)

    def as_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_json(cls, doc: Mapping) -> Fault:
        """Build from the control API's JSON (`delay_ms` or `delay` seconds)."""
        allowed = {"path", "instance_id", "method", "delay", "delay_ms", "status", "drop", "times"}
        unknown = set(doc) - allowed
        if unknown:
            raise ValueError(f"unknown fault field(s) {sorted(unknown)}; allowed: {sorted(allowed)}")
        delay = float(doc.get("delay", 0.0))
        if "delay_ms" in doc:
            delay = float(doc["delay_ms"]) / 1000.0
        status = doc.get("status")
        times = doc.get("times")
        return cls(path=str(doc.get("path", "*")), instance_id=doc.get("instance_id"),
                   method=doc.get("method"), delay=delay,
                   status=int(status) if status is not None else None, drop=bool(doc.get("drop", False)),
                   times=int(times) if times is not None else None)


class Faults:
    """The fault rules in force; thread-safe, first matching rule wins."""

    def __init__(self) -> None:
        self._rules: list[Fault] = []
        self._ids = itertools.count(1)
        self._lock = threading.Lock()

    def add(self, fault: Fault | None = None, **kwargs) -> Fault:
        fault = fault or Fault(**kwargs)
        with self._lock:
            fault.id = next(self._ids)
            self._rules.append(fault)
        return fault

    def remove(self, fault_id: int) -> bool:
        with self._lock:
            before = len(self._rules)
            self._rules = [f for f in self._rules if f.id != fault_id]
            return len(self._rules) != before

    def clear(self) -> None:
        with self._lock:
            self._rules.clear()

    def list(self) -> list[Fault]:
        with self._lock:
            return list(self._rules)

    def take(self, instance_id: str | None, method: str, path: str) -> Fault | None:
        """The rule that applies to this request, counting the hit (and retiring spent rules)."""
        with self._lock:
            for rule in self._rules:
                if rule.matches(instance_id, method, path):
                    rule.hits += 1
                    if rule.times is not None and rule.hits >= rule.times:
                        self._rules.remove(rule)
                    return rule
        return None


# -- request accounting -------------------------------------------------------------------------------
@dataclass
class RequestRecord:
    at: float
    peer: str | None
    instance_id: str | None
    method: str
    path: str
    status: int | str  # an HTTP status, or "dropped"
    imds_version: str  # "v1", "v2", "token" (the PUT) or "" (refused before it mattered)


class RequestStats:
    """Counts per (instance, method, path, status) and a bounded log of recent requests."""

    def __init__(self, recent: int = 5000) -> None:
        self._counts: Counter[tuple[str | None, str, str, int | str]] = Counter()
        self._recent: deque[RequestRecord] = deque(maxlen=recent)
        self._lock = threading.Lock()
        self.total = 0

    def record(self, rec: RequestRecord) -> None:
        with self._lock:
            self._counts[(rec.instance_id, rec.method, rec.path, rec.status)] += 1
            self._recent.append(rec)
            self.total += 1

    def count(self, *, path: str | None = None, status: int | str | None = None,
              instance_id: str | None = None, method: str | None = None) -> int:
        """How many requests matched every given filter (`path` may be an fnmatch glob)."""
        with self._lock:
            items = list(self._counts.items())
        n = 0
        for (iid, m, p, s), c in items:
            if path is not None and not fnmatch.fnmatchcase(p, path):
                continue
            if status is not None and s != status:
                continue
            if instance_id is not None and iid != instance_id:
                continue
            if method is not None and m != method.upper():
                continue
            n += c
        return n

    def recent(self, limit: int | None = None) -> list[RequestRecord]:
        with self._lock:
            recs = list(self._recent)
        return recs[-limit:] if limit else recs

    def reset(self) -> None:
        with self._lock:
            self._counts.clear()
            self._recent.clear()
            self.total = 0

    def as_json(self) -> dict:
        with self._lock:
            items = list(self._counts.items())
            total = self.total
        by_path: dict[str, dict[str, int]] = {}
        by_instance: dict[str, dict[str, dict[str, int]]] = {}
        for (iid, method, path, status), c in items:
            key = f"{method} {path}"
            by_path.setdefault(key, {})
            by_path[key][str(status)] = by_path[key].get(str(status), 0) + c
            inst = by_instance.setdefault(iid or "unresolved", {}).setdefault(key, {})
            inst[str(status)] = inst.get(str(status), 0) + c
        return {"total": total, "by_path": by_path, "by_instance": by_instance}


# -- spot interruption ----------------------------------------------------------------------------------
@dataclass
class SpotAction:
    """An interruption notice as `spot/instance-action` returns it (the Datadog agent parses `time`
    as RFC 3339 after checking `instance-life-cycle` is `spot`)."""

    action: str = "terminate"  # terminate | stop | hibernate
    time: str = ""

    def as_json(self) -> dict:
        return {"action": self.action, "time": self.time}


# -- the service ------------------------------------------------------------------------------------------
class ImdsModel:
    """IMDS behaviour for every instance of a `World`, driven with `ImdsRequest`s.

    `clock` returns epoch seconds (token expiry, credential timestamps); tests pass a
    `ManualClock` and advance it instead of sleeping.
    """

    def __init__(self, world: World, clock: Callable[[], float] = time.time) -> None:
        self.world = world
        self.clock = clock
        self.faults = Faults()
        self.stats = RequestStats()
        self._tokens: dict[str, dict[str, float]] = {}  # instance_id -> token -> expires_at
        self._spot: dict[str, SpotAction] = {}
        self._spot_lifecycle: set[str] = set()
        self._routes: list[tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, str]] = []
        self._lock = threading.Lock()
        self.tokens_evicted = 0
        # What `set_policy` was told, per instance: a world copied in from elsewhere (the docker
        # backend's world file, reloaded on every task change) gets it again (`reapply_policies`).
        self.policies_set: dict[str, dict] = {}
        # Set by a server that serves callers further than one hop (ImdsServer.listen(hops=2)).
        self.hop_limit_enforced = False
        # On a shared listener: how many IP hops a caller (by source address) is from its instance,
        # when more than one. The docker backend knows which of its containers are in bridge mode
        # and writes their addresses into its world file (docs/imds.md#hop-limit).
        self.caller_hops: dict[str, int] = {}

    # -- instances and who is calling --------------------------------------------------------------
    def instance(self, instance_id: str) -> ContainerInstance:
        for inst in list(self.world.instances):
            if inst.instance_id == instance_id:
                return inst
        raise KeyError(f"no instance {instance_id!r} in the world "
                       f"(known: {[i.instance_id for i in self.world.instances]})")

    def route(self, cidr: str, instance: ContainerInstance | str) -> None:
        """Callers from `cidr` belong to `instance` (the docker backend: an instance's bridge
        network, or the link-local addresses it hands that instance's containers)."""
        iid = instance if isinstance(instance, str) else instance.instance_id
        with self._lock:
            self._routes.append((ipaddress.ip_network(cidr, strict=False), iid))

    def resolve(self, peer: str | None) -> tuple[ContainerInstance | None, str]:
        """Which instance a caller on a shared listener belongs to, and how that was decided."""
        if not peer:
            return None, "no peer address"
        found = self.world.find_container(ip=peer)
        if found:
            return found[0], f"container {found[2].name} has address {peer}"
        inst = self.world.instance_by_ip(peer)
        if inst:
            return inst, f"{peer} is the private IP of {inst.instance_id}"
        try:
            addr = ipaddress.ip_address(peer)
        except ValueError:
            return None, f"peer {peer!r} is not an IP address"
        with self._lock:
            routes = list(self._routes)
        matches = {iid for net, iid in routes if addr.version == net.version and addr in net}
        if len(matches) == 1:
            iid = matches.pop()
            try:
                return self.instance(iid), f"{peer} is routed to {iid}"
            except KeyError:
                return None, f"{peer} is routed to {iid}, which is no longer in the world"
        if len(matches) > 1:
            return None, f"{peer} matches routes of several instances {sorted(matches)}"
        return None, (f"cannot tell which instance {peer} belongs to: no container has that address, "
                      f"it is no instance's private IP and no route covers it")

    def hops_of(self, peer: str | None) -> int:
        """How many IP hops `peer` is from its instance, as far as this model was told (1 otherwise)."""
        return self.caller_hops.get(peer or "", 1)

    # -- policy switches (they write the world: it is the one source of truth) --------------------
    def set_policy(self, instance_id: str, *, tokens_required: bool | None = None,
                   enabled: bool | None = None, hop_limit: int | None = None,
                   tags_enabled: bool | None = None) -> ContainerInstance:
        inst = self.instance(instance_id)
        if hop_limit is not None and not 1 <= int(hop_limit) <= 64:
            raise ValueError(f"hop limit must be 1..64 (HttpPutResponseHopLimit), got {hop_limit!r}")
        asked = {"tokens_required": tokens_required, "enabled": enabled, "hop_limit": hop_limit,
                 "tags_enabled": tags_enabled}
        asked = {k: v for k, v in asked.items() if v is not None}
        self._apply_policy(inst, asked)
        self.policies_set.setdefault(instance_id, {}).update(asked)
        self.world.touch()
        return inst

    @staticmethod
    def _apply_policy(inst: ContainerInstance, asked: dict) -> None:
        if "tokens_required" in asked:
            inst.imds_tokens_required = bool(asked["tokens_required"])
        if "enabled" in asked:
            inst.imds_enabled = bool(asked["enabled"])
        if "hop_limit" in asked:
            inst.imds_hop_limit = int(asked["hop_limit"])
        if "tags_enabled" in asked:
            inst.imds_tags_enabled = bool(asked["tags_enabled"])

    def reapply_policies(self) -> None:
        """After the world was replaced by a copy (the docker IMDS reloading the backend's world
        file), put back every policy this model was told, so a turned-off IMDS stays off."""
        for instance_id, asked in self.policies_set.items():
            try:
                self._apply_policy(self.instance(instance_id), asked)
            except KeyError:
                continue  # that instance is gone from the world

    def policy(self, inst: ContainerInstance) -> dict:
        """The instance's MetadataOptions, in the words of DescribeInstances."""
        return {
            "InstanceId": inst.instance_id,
            "PrivateIp": inst.private_ip,
            "HttpEndpoint": "enabled" if inst.imds_enabled else "disabled",
            "HttpTokens": "required" if inst.imds_tokens_required else "optional",
            "HttpPutResponseHopLimit": inst.imds_hop_limit,
            "InstanceMetadataTags": "enabled" if inst.imds_tags_enabled else "disabled",
            # Only where a listener knows its callers' distance (docs/imds.md#hop-limit).
            "HopLimitEnforced": self.hop_limit_enforced or any(h > 1 for h in self.caller_hops.values()),
            "SpotAction": self._spot[inst.instance_id].as_json() if inst.instance_id in self._spot else None,
        }

    # -- spot -------------------------------------------------------------------------------------------
    def interrupt_spot(self, instance_id: str, action: str = "terminate",
                       at: float | None = None) -> SpotAction:
        """Post a spot interruption notice (EC2 gives two minutes' warning by default)."""
        if action not in ("terminate", "stop", "hibernate"):
            raise ValueError(f"spot action must be terminate, stop or hibernate, got {action!r}")
        self.instance(instance_id)
        when = at if at is not None else self.clock() + 120
        spot = SpotAction(action, _iso(when))
        with self._lock:
            self._spot[instance_id] = spot
            self._spot_lifecycle.add(instance_id)
        return spot

    def mark_spot(self, instance_id: str, spot: bool = True) -> None:
        """Make `instance-life-cycle` say `spot` (no notice pending)."""
        with self._lock:
            (self._spot_lifecycle.add if spot else self._spot_lifecycle.discard)(instance_id)

    def clear_spot(self, instance_id: str | None = None) -> None:
        with self._lock:
            if instance_id is None:
                self._spot.clear()
            else:
                self._spot.pop(instance_id, None)

    # -- tokens -----------------------------------------------------------------------------------------
    def issue_token(self, inst: ContainerInstance, ttl: int) -> str:
        now = self.clock()
        token = "AQAEA" + base64.b64encode(secrets.token_bytes(39)).decode()
        with self._lock:
            store = self._tokens.setdefault(inst.instance_id, {})
            if len(store) >= MAX_TOKENS_PER_INSTANCE:
                for t in [t for t, exp in store.items() if exp <= now]:
                    del store[t]
                while len(store) >= MAX_TOKENS_PER_INSTANCE:
                    # Oldest first (dicts keep insertion order); counted, never silent.
                    del store[next(iter(store))]
                    self.tokens_evicted += 1
            store[token] = now + ttl
        return token

    def token_state(self, inst: ContainerInstance, token: str) -> str:
        """"valid", "expired" or "unknown" (never issued, or issued by another instance)."""
        with self._lock:
            expires = self._tokens.get(inst.instance_id, {}).get(token)
            if expires is None:
                return "unknown"
            if self.clock() >= expires:
                del self._tokens[inst.instance_id][token]
                return "expired"
            return "valid"

    # -- the request path -----------------------------------------------------------------------------
    def handle(self, request: ImdsRequest, instance: ContainerInstance | None, why: str = "") -> ImdsAnswer:
        """Answer one request as `instance`'s IMDS (None: the caller could not be placed)."""
        iid = instance.instance_id if instance else None
        fault = self.faults.take(iid, request.method, request.path)
        if fault and (fault.drop or fault.status):
            answer = (ImdsAnswer(0, drop=True, note=f"fault #{fault.id}: drop") if fault.drop
                      else error(fault.status, f"fault #{fault.id}: status {fault.status}"))
        elif instance is None:
            answer = error(404, why or "no instance answers here", **{"X-Ecs-Lab-Reason": why})
        else:
            answer = self._answer(request, instance)
        if fault:
            answer.delay = fault.delay
        answer.instance_id = iid
        self.stats.record(RequestRecord(self.clock(), request.peer, iid, request.method.upper(),
                                        request.path, "dropped" if answer.drop else answer.status,
                                        answer.imds_version))
        return answer

    def _answer(self, req: ImdsRequest, inst: ContainerInstance) -> ImdsAnswer:
        method = req.method.upper()
        path = req.path
        if not inst.imds_enabled:
            # HttpEndpoint=disabled: the endpoint still answers, with 403 (AWS re:Post, "403 -
            # Forbidden ... the request isn't allowed or IMDS is turned off").
            return error(403, f"IMDS is turned off on {inst.instance_id} (HttpEndpoint=disabled)")
        forwarded = req.header("X-Forwarded-For") is not None
        if path.endswith("/api/token") or path.endswith("/api/token/"):
            return self._token_request(req, inst, method, path, forwarded)
        if method not in ("GET", "HEAD"):
            return error(405, f"{method} is not served on metadata paths", Allow="GET, HEAD")
        token = req.header(TOKEN_HEADER)
        if token is not None:
            if forwarded:
                return error(403, "X-Forwarded-For on a token-authenticated request (sent through a proxy)")
            state = self.token_state(inst, token.strip())
            if state != "valid":
                return error(401, f"token is {state} on {inst.instance_id}")
            version = "v2"
        elif inst.imds_tokens_required:
            return error(401, f"{inst.instance_id} requires IMDSv2 tokens (HttpTokens=required)")
        else:
            version = "v1"
        answer = self._lookup(inst, path)
        answer.imds_version = version
        return answer

    def _token_request(self, req: ImdsRequest, inst: ContainerInstance, method: str, path: str,
                       forwarded: bool) -> ImdsAnswer:
        if method == "OPTIONS":
            return ImdsAnswer(200, "", headers={"Allow": "OPTIONS, PUT"})
        if method != "PUT":
            return error(405, "tokens are only issued to PUT", Allow="OPTIONS, PUT")
        if path.rstrip("/") != TOKEN_PATH:
            return error(403, "tokens are only issued on /latest/api/token")
        if forwarded:
            return error(403, "token PUT carried X-Forwarded-For (IMDSv2 refuses proxied token requests)")
        raw = req.header(TTL_HEADER)
        if raw is None:
            return error(400, f"missing {TTL_HEADER_WIRE}")
        try:
            ttl = int(raw.strip())
        except ValueError:
            return error(400, f"{TTL_HEADER_WIRE} is not an integer: {raw!r}")
        if not MIN_TOKEN_TTL <= ttl <= MAX_TOKEN_TTL:
            return error(400, f"{TTL_HEADER_WIRE} must be {MIN_TOKEN_TTL}..{MAX_TOKEN_TTL}, got {ttl}")
        token = self.issue_token(inst, ttl)
        if req.hops > inst.imds_hop_limit:
            # Issued, but its response runs out of hops before it reaches the caller.
            return ImdsAnswer(0, drop=True, imds_version="token",
                              note=f"token response dropped: the caller is {req.hops} hops away and "
                                   f"{inst.instance_id}'s HttpPutResponseHopLimit is {inst.imds_hop_limit}")
        return ImdsAnswer(200, token, headers={TTL_HEADER_WIRE: str(ttl)}, imds_version="token")

    # -- the metadata tree ----------------------------------------------------------------------------
    def _lookup(self, inst: ContainerInstance, path: str) -> ImdsAnswer:
        parts = [p for p in path.split("/") if p]
        if not parts:
            return ImdsAnswer(200, "\n".join(METADATA_VERSIONS))
        if parts[0] not in METADATA_VERSIONS:
            return error(404, f"unknown metadata version {parts[0]!r}")
        node: object = self.tree(inst)
        for part in parts[1:]:
            if not isinstance(node, dict) or part not in node:
                return error(404, f"{path} does not exist on {inst.instance_id}")
            node = node[part]
        if isinstance(node, dict) and len(parts) == 1:
            # `/latest/` lists its categories bare (dynamic, meta-data), unlike deeper listings.
            return ImdsAnswer(200, "\n".join(node))
        if isinstance(node, dict):
            # Directory listings: one entry per line, subdirectories end with "/", no final newline.
            return ImdsAnswer(200, "\n".join(k + "/" if isinstance(v, dict) else k for k, v in node.items()))
        return ImdsAnswer(200, node() if callable(node) else str(node))

    def tree(self, inst: ContainerInstance) -> dict:
        """The instance's metadata as nested dicts (a dict is a directory; a callable, a lazy leaf)."""
        tree: dict[str, object] = {
            "dynamic": {"instance-identity": {"document": lambda: _imds_json(inst.identity_document())}},
            "meta-data": self._meta_data(inst),
        }
        # The instance's user data, as given at launch; EC2 answers 404 there when none was given
        # (and does not list it under /latest/).
        if inst.user_data is not None:
            tree["user-data"] = inst.user_data
        return tree

    def _meta_data(self, inst: ContainerInstance) -> dict:
        md: dict[str, object] = {
            "ami-id": inst.ami_id,
            "ami-launch-index": "0",
            "ami-manifest-path": "(unknown)",
            "block-device-mapping": {"ami": "/dev/xvda", "root": "/dev/xvda"},
            "events": {"maintenance": {"history": "[]", "scheduled": "[]"}},
            "hostname": inst.hostname,
        }
        if inst.iam_role:
            # Leaves that cost something to render are callables, rendered only when asked for.
            md["iam"] = {"info": lambda: self._iam_info(inst),
                         "security-credentials": {inst.iam_role: lambda: _imds_json(self.credentials(inst))}}
        md.update({
            "instance-action": "none",
            "instance-id": inst.instance_id,
            "instance-life-cycle": "spot" if inst.instance_id in self._spot_lifecycle else "on-demand",
            "instance-type": inst.instance_type,
            "local-hostname": inst.hostname,
            "local-ipv4": inst.private_ip,
            "mac": inst.mac,
            "network": {"interfaces": {"macs": {inst.mac: self._interface(inst)}}},
            "placement": {
                "availability-zone": inst.availability_zone,
                "availability-zone-id": self._az_id(inst),
                "region": inst.region,
            },
            "profile": "default-hvm",
        })
        if inst.public_ip:
            md["public-hostname"] = self._public_hostname(inst)
            md["public-ipv4"] = inst.public_ip
        md.update({
            "reservation-id": inst.reservation_id,
            "security-groups": inst.security_group_name,
            "services": {"domain": "amazonaws.com", "partition": "aws"},
        })
        spot = self._spot.get(inst.instance_id)
        if spot:
            md["spot"] = {"instance-action": _imds_json(spot.as_json()), "termination-time": spot.time}
        if inst.imds_tags_enabled:
            md["tags"] = {"instance": dict(inst.tags)}
        return md

    def _interface(self, inst: ContainerInstance) -> dict:
        net = ipaddress.ip_network(f"{inst.private_ip}/24", strict=False)
        vpc = ipaddress.ip_network(f"{inst.private_ip}/16", strict=False)
        iface: dict[str, object] = {
            "device-number": "0",
            "interface-id": inst.eni_id,
        }
        if inst.public_ip:
            iface["ipv4-associations"] = {inst.public_ip: inst.private_ip}
        iface.update({
            "local-hostname": inst.hostname,
            "local-ipv4s": inst.private_ip,
            "mac": inst.mac,
            "owner-id": inst.account_id,
        })
        if inst.public_ip:
            iface["public-hostname"] = self._public_hostname(inst)
            iface["public-ipv4s"] = inst.public_ip
        iface.update({
            "security-group-ids": inst.security_group_id,
            "security-groups": inst.security_group_name,
            # The ids are the instance's EC2 identity (the control plane's DescribeInstances).
            "subnet-id": inst.subnet_id,
            "subnet-ipv4-cidr-block": str(net),
            "vpc-id": inst.vpc_id,
            "vpc-ipv4-cidr-block": str(vpc),
            "vpc-ipv4-cidr-blocks": str(vpc),
            # No vpc-ipv6-cidr-blocks: an IPv4-only interface answers 404 there (the agent expects it).
        })
        return iface

    @staticmethod
    def _az_id(inst: ContainerInstance) -> str:
        # us-east-1a -> use1-az1, ap-southeast-2b -> apse2-az2 (EC2's AZ ids; the letter-to-number
        # mapping is per account on AWS, so any stable one is faithful).
        parts = inst.region.split("-")
        if len(parts) == 3:
            prefix = parts[0] + _REGION_DIRECTIONS.get(parts[1], parts[1][:1]) + parts[2]
        else:
            prefix = inst.region.replace("-", "")
        letter = inst.availability_zone[len(inst.region):] or "a"
        return f"{prefix}-az{ord(letter[0]) - ord('a') + 1}"

    @staticmethod
    def _public_hostname(inst: ContainerInstance) -> str:
        dashed = "ec2-" + (inst.public_ip or "").replace(".", "-")
        if inst.region == "us-east-1":
            return f"{dashed}.compute-1.amazonaws.com"
        return f"{dashed}.{inst.region}.compute.amazonaws.com"

    def _iam_info(self, inst: ContainerInstance) -> str:
        return _imds_json({
            "Code": "Success",
            "LastUpdated": _iso(self._credential_window(inst)[0]),
            "InstanceProfileArn": f"arn:aws:iam::{inst.account_id}:instance-profile/{inst.iam_role}",
            "InstanceProfileId": inst.instance_profile_id,
        })

    def _credential_window(self, inst: ContainerInstance) -> tuple[float, float]:
        # EC2 rotates role credentials so that new ones exist well before the old expire; here a
        # new set every hour, each valid six hours (botocore refreshes 10-20 min before expiry).
        start = int(self.clock()) // 3600 * 3600
        return start, start + 6 * 3600

    def credentials(self, inst: ContainerInstance) -> dict:
        """The role credentials `iam/security-credentials/<role>` serves right now."""
        start, expires = self._credential_window(inst)
        seed = f"{inst.instance_id}/{inst.iam_role}/{start}"
        upper = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"
        b64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
        return {
            "Code": "Success",
            "LastUpdated": _iso(start),
            "Type": "AWS-HMAC",
            "AccessKeyId": "ASIA" + _stable(seed + "/akid", 16, upper),
            "SecretAccessKey": _stable(seed + "/secret", 40, b64),
            "Token": "IQoJb3JpZ2luX2VjE" + _stable(seed + "/token", 300, b64),
            "Expiration": _iso(expires),
        }

    # -- views for the control API ----------------------------------------------------------------------
    def instances_json(self, listeners: Iterable[tuple[str, str | None]] = ()) -> list[dict]:
        urls: dict[str | None, list[str]] = {}
        for url, iid in listeners:
            urls.setdefault(iid, []).append(url)
        out = []
        for inst in list(self.world.instances):
            doc = self.policy(inst)
            doc["Listeners"] = urls.get(inst.instance_id, [])
            out.append(doc)
        return out
