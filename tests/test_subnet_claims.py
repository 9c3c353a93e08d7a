"""Subnet claims across processes (lab/subnet_claims.py): concurrent claimants never share a subnet, a
dead holder's claim is free again, a handed-down claim stays held by the child."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest

from lab import subnet_claims
from lab.subnet_claims import SubnetClaimError, claim_subnet, held_claims, reserve_subnet

PROCESSES = 6
CLAIMS_EACH = 12

# Each claimant waits for a common start time (so the claims race), claims CLAIMS_EACH subnets, prints
# them, and holds them until its stdin closes: every claim overlaps every other in time.
CLAIMANT = textwrap.dedent("""
    import json, sys, time
    from lab.subnet_claims import claim_subnet
    start_at = float(sys.argv[1])
    while time.time() < start_at:
        time.sleep(0.001)
    claims = [claim_subnet(name=f"racer-{sys.argv[2]}") for _ in range(int(sys.argv[3]))]
    print(json.dumps([c.subnet for c in claims]), flush=True)
    sys.stdin.read()
""")


@pytest.fixture
def claims_env(tmp_path, monkeypatch):
    """A private claims directory: other labs on this machine neither see nor disturb these claims."""
    monkeypatch.setenv("LAB_CLAIMS_DIR", str(tmp_path / "claims"))
    env = {**os.environ, "LAB_CLAIMS_DIR": str(tmp_path / "claims"),
           "PYTHONPATH": os.environ.get("PYTHONPATH", os.getcwd())}
    return env


def _claimant(env: dict, start_at: float, label: str, count: int) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", CLAIMANT, str(start_at), label, str(count)], env=env,
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def test_concurrent_claimants_never_share_a_subnet(claims_env):
    start_at = time.time() + 3.0  # after every interpreter has started
    procs = [_claimant(claims_env, start_at, str(i), CLAIMS_EACH) for i in range(PROCESSES)]
    try:
        got = []
        for proc in procs:
            line = proc.stdout.readline()
            assert line, f"claimant failed: {proc.stderr.read()}"
            got.append(json.loads(line))
        everything = [s for subnets in got for s in subnets]
        assert len(everything) == PROCESSES * CLAIMS_EACH
        assert len(set(everything)) == len(everything), f"a subnet was handed out twice: {got}"
        # While they hold them, the claims are listed with their holders, and nobody else gets one.
        listed = {r["subnet"]: r for r in held_claims()}
        assert set(everything) <= set(listed)
        assert {listed[s]["pid"] for s in everything} == {p.pid for p in procs}
        with pytest.raises(SubnetClaimError, match="racer-"):
            claim_subnet(everything[0])
    finally:
        for proc in procs:
            proc.stdin.close()
            proc.wait(timeout=30)
    # Their processes ended: every subnet is free again.
    assert held_claims() == []
    claim_subnet(everything[0]).release()


def test_a_killed_holder_releases_its_claim(claims_env):
    proc = _claimant(claims_env, 0, "doomed", 1)
    try:
        subnet = json.loads(proc.stdout.readline())[0]
        with pytest.raises(SubnetClaimError, match=f"pid {proc.pid}"):
            claim_subnet(subnet)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
    with claim_subnet(subnet, name="next") as claim:
        assert claim.held and [r["name"] for r in held_claims()] == ["next"]


def test_a_handed_down_claim_is_held_by_the_child(claims_env):
    claim = claim_subnet(name="parent")
    fd = claim.inheritable_fd()
    child = subprocess.Popen(
        [sys.executable, "-c", "import sys; from lab.subnet_claims import SubnetClaim; "
         f"c = SubnetClaim.adopt({fd}, {claim.subnet!r}); c.record(name='child'); print('ok', flush=True); "
         "sys.stdin.read()"],
        env=claims_env, pass_fds=[fd], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout.readline().strip() == "ok"
        claim.release()  # the parent lets go; the child still holds it
        with pytest.raises(SubnetClaimError, match=f"lab 'child', pid {child.pid}"):
            claim_subnet(claim.subnet)
    finally:
        child.stdin.close()
        child.wait(timeout=10)
    claim_subnet(claim.subnet).release()


def test_a_reserved_subnet_is_skipped_by_automatic_claims(claims_env, monkeypatch):
    monkeypatch.setattr(subnet_claims, "AUTO_RANGE", range(200, 202))
    monkeypatch.setattr(subnet_claims, "_listening_octets", lambda: set())
    reserved = reserve_subnet()
    other = claim_subnet()
    assert other.subnet != reserved
    with pytest.raises(SubnetClaimError, match="no free loopback subnet"):
        claim_subnet()
    # The process the reservation was for claims it by number.
    claim_subnet(reserved).release()
    other.release()


def test_bad_subnet_is_refused(claims_env):
    with pytest.raises(ValueError, match="127.42"):
        claim_subnet("10.0")
