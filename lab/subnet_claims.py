"""Claims on loopback subnets, so labs side by side never share one (docs/side_by_side.md).

A local lab owns a whole `127.X.0.0/16`: its instances are `127.X.1.N`, their agents' "localhost"
`127.X.2.N`, its apps `127.X.3.K`, its shared servers `127.X.0.1`. Two labs on the same X would bind
each other's addresses. "Nobody listens there yet" is not enough when two processes (two pytest-xdist
workers, two CI jobs, two `ecs-lab up --name`) choose at the same time: both see a free X before
either listens. So a lab claims its X first:

- one file per subnet, `<claims dir>/127.X.claim`, locked with `flock(LOCK_EX)` by the process that
  runs the lab, for as long as the lab runs. The kernel drops the lock when the last descriptor of
  that open file closes: on `release()`, and when the process dies in any way (`kill -9` included),
  so a crashed lab never leaves a subnet claimed;
- the file's content names the holder (pid, lab name, state file) for `ecs-lab list` and for the
  error a second claimant gets; it is only information: the lock is the claim;
- a process may hand its claim to a child it starts (`ecs-lab up --detach` hands it to the
  supervisor): the child inherits the locked descriptor, and the parent closes its copy without
  unlocking (an unlock would release it for the child too);
- `reserve()` picks a subnet for another process that will claim it by number (a test passing
  `--subnet` to the CLI): the record says "reserved by pid P until T", automatic claims skip it
  meanwhile, an explicit claim of that number takes it.

The claims directory is `$LAB_CLAIMS_DIR`, else `/tmp/ecs-lab-claims`: one per machine, since
loopback is one per machine whoever runs the lab.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import random
import time
from dataclasses import dataclass
from pathlib import Path

# Subnets handed out automatically: 127.0 is the unnamed lab's default (README quick start), low
# numbers are what people pick by hand; 100-249 leaves both alone.
AUTO_RANGE = range(100, 250)
RESERVATION_S = 120.0


class SubnetClaimError(RuntimeError):
    """The subnet is claimed by another lab, or none is free."""


def claims_dir() -> Path:
    path = Path(os.environ.get("LAB_CLAIMS_DIR") or "/tmp/ecs-lab-claims")
    if not path.is_dir():
        path.mkdir(parents=True, exist_ok=True)
        with contextlib.suppress(OSError):
            # Shared by every user of the machine (loopback is), as /tmp is: sticky, world-writable.
            path.chmod(0o1777)
    return path


def _octet(subnet: str) -> int:
    parts = subnet.split(".")
    if len(parts) != 2 or parts[0] != "127" or not parts[1].isdigit() or not 0 <= int(parts[1]) <= 255:
        raise ValueError(f"a lab subnet is the first two octets of a 127.0.0.0/8 address, like 127.42; "
                         f"not {subnet!r}")
    return int(parts[1])


def claim_file(subnet: str) -> Path:
    return claims_dir() / f"127.{_octet(subnet)}.claim"


def pid_alive(pid: object) -> bool:
    """Whether `pid` runs: exists and is not a zombie (used by the state file's owner check too)."""
    if not isinstance(pid, int) or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie (exited, not yet reaped: a detached supervisor's parent is gone and nothing reaps it)
    # holds no lock and runs no lab.
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return True
    return state not in ("Z", "X")


def read_record(path: Path) -> dict:
    try:
        record = json.loads(path.read_text() or "{}")
    except (OSError, ValueError):
        return {}
    return record if isinstance(record, dict) else {}


@dataclass
class SubnetClaim:
    """A held claim on `subnet` (see the module docstring). `release()` or process exit ends it."""

    subnet: str
    path: Path
    fd: int | None

    @property
    def held(self) -> bool:
        return self.fd is not None

    @property
    def services_host(self) -> str:
        """Where the lab's shared servers (intake, control plane, ...) listen: `127.X.0.1`."""
        return f"{self.subnet}.0.1"

    def record(self, **fields: object) -> None:
        """Rewrite the holder's record (pid, name, state file, ...) while holding the lock."""
        if self.fd is None:
            raise SubnetClaimError(f"the claim on {self.subnet} was released")
        data = {"subnet": self.subnet, "pid": os.getpid(), "claimed_at": time.time(), **fields}
        raw = json.dumps(data).encode()
        os.ftruncate(self.fd, 0)
        os.pwrite(self.fd, raw, 0)

    def inheritable_fd(self) -> int:
        """The locked descriptor, made inheritable, for `subprocess.Popen(pass_fds=...)`: the child
        then holds the claim too (and alone, once this process calls `release()`)."""
        if self.fd is None:
            raise SubnetClaimError(f"the claim on {self.subnet} was released")
        os.set_inheritable(self.fd, True)
        return self.fd

    def release(self) -> None:
        # Close, never LOCK_UN: an unlock would also release a child that inherited the descriptor.
        fd, self.fd = self.fd, None
        if fd is not None:
            with contextlib.suppress(OSError):
                os.close(fd)

    def __enter__(self) -> SubnetClaim:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()

    @classmethod
    def adopt(cls, fd: int, subnet: str) -> SubnetClaim:
        """Take over a claim a parent process handed down (`inheritable_fd`)."""
        try:
            os.fstat(fd)
        except OSError as exc:
            raise SubnetClaimError(f"no claim descriptor {fd} was handed down for {subnet}: {exc}") from None
        os.set_inheritable(fd, False)  # the lab's own children must not hold it past the lab
        return cls(subnet, claim_file(subnet), fd)


def _try_lock(path: Path) -> int | None:
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o666)
    with contextlib.suppress(OSError):
        if os.fstat(fd).st_uid == os.getuid():
            os.fchmod(fd, 0o666)  # other users' labs must be able to lock it once it is free
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as exc:
        os.close(fd)
        if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
            return None
        raise
    return fd


def _holder(path: Path) -> str:
    record = read_record(path)
    if not record:
        return "another process"
    name = f"lab {record['name']!r}, " if record.get("name") else ""
    return f"{name}pid {record.get('pid')}"


def _listening_octets() -> set[int]:
    """Second octets of 127.X addresses a TCP socket listens on or a UDP socket is bound to: a
    process that does not use claims (an older lab, a user's own server) still makes its X
    unavailable. Read from /proc/net (this network namespace's sockets) rather than per process,
    which takes seconds on a busy machine."""
    used = set()
    for table in ("tcp", "udp"):
        try:
            lines = Path(f"/proc/net/{table}").read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            # TCP: listeners only (a TIME_WAIT left by a stopped lab does not hold its address).
            if len(fields) < 4 or (table == "tcp" and fields[3] != "0A"):
                continue
            address = fields[1].split(":")[0]  # "0100007F" is 127.0.0.1, little-endian
            if len(address) == 8 and address.endswith("7F"):
                used.add(int(address[4:6], 16))
    return used


def claim_subnet(subnet: str | None = None, **record: object) -> SubnetClaim:
    """Claim `subnet` ("127.X"), or a free one from `AUTO_RANGE` when None. `record` (name,
    state_file, ...) is written into the claim file. Raises SubnetClaimError naming the holder when
    the asked subnet is claimed, or when every subnet of the range is."""
    if subnet is not None:
        path = claim_file(subnet)
        fd = _try_lock(path)
        if fd is None:
            raise SubnetClaimError(f"subnet {subnet} is claimed by {_holder(path)} "
                                   f"(claim file {path}); pick another or stop that lab")
        claim = SubnetClaim(subnet, path, fd)
        claim.record(**record)
        return claim
    listening = _listening_octets()
    candidates = [x for x in AUTO_RANGE if x not in listening]
    random.shuffle(candidates)  # concurrent claimants mostly try different files first
    for x in candidates:
        path = claims_dir() / f"127.{x}.claim"
        fd = _try_lock(path)
        if fd is None:
            continue
        previous = read_record(path)
        reserved_by = previous.get("reserved_by")
        if previous.get("reserved_until", 0) > time.time() and pid_alive(reserved_by):
            os.close(fd)  # reserved for a lab another process is about to start there
            continue
        claim = SubnetClaim(f"127.{x}", path, fd)
        claim.record(**record)
        return claim
    first, last = AUTO_RANGE.start, AUTO_RANGE.stop - 1
    raise SubnetClaimError(f"no free loopback subnet: 127.{first}-127.{last} are all "
                           f"claimed or in use (claims in {claims_dir()}; `ecs-lab list` shows the labs)")


def reserve_subnet(seconds: float = RESERVATION_S) -> str:
    """A free subnet, reserved (not held) for another process that will claim it by number within
    `seconds`, e.g. `ecs-lab up --subnet` run by a test. Automatic claims skip it meanwhile."""
    claim = claim_subnet()
    try:
        claim.record(reserved_by=os.getpid(), reserved_until=time.time() + seconds)
    finally:
        claim.release()
    return claim.subnet


def held_claims() -> list[dict]:
    """The records of every subnet claimed right now (a live holder), by subnet."""
    out = []
    for path in sorted(claims_dir().glob("127.*.claim"), key=lambda p: int(p.name.split(".")[1])):
        record = read_record(path)
        if record.get("reserved_until") or not pid_alive(record.get("pid")):
            continue
        # The lock is the claim: a live pid whose lock is gone released it (or the pid was reused).
        if not _locked(path):
            continue
        # And the record's pid must be the one holding the file open: pids are reused within minutes
        # on a busy machine (pid_max is often 32768), and a record can outlive its writer.
        if not _holds_open(record.get("pid"), path):
            continue
        out.append(record)
    return out


def _holds_open(pid: object, path: Path) -> bool:
    """Whether process `pid` has `path` open (one of its descriptors links to it); True when its
    descriptors cannot be read (another user's process), where the lock alone must do."""
    try:
        fds = os.listdir(f"/proc/{pid}/fd")
    except PermissionError:
        return True
    except OSError:
        return False
    target = str(path.resolve())
    for fd in fds:
        try:
            if os.readlink(f"/proc/{pid}/fd/{fd}") == target:
                return True
        except OSError:
            continue
    return False


def _locked(path: Path) -> bool:
    """Whether some process holds the flock on `path`, read from /proc/locks so that looking never
    takes the lock (a claimant at that instant would be refused)."""
    try:
        st = path.stat()
        text = Path("/proc/locks").read_text()
    except OSError:
        return False
    # Lines read "1: FLOCK  ADVISORY  WRITE 1234 08:01:5678 0 EOF": the device (hex major:minor)
    # and inode of the locked file.
    wanted = f"{os.major(st.st_dev):02x}:{os.minor(st.st_dev):02x}:{st.st_ino}"
    return any(len(f := line.split()) > 5 and f[1] == "FLOCK" and f[5] == wanted
               for line in text.splitlines())
