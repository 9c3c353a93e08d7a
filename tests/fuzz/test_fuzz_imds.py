"""IMDS requests, fuzzed (methods, paths, token and TTL headers, X-Forwarded-For): the model answers
every one with a real HTTP status and never raises; a malformed token request is a 400."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from lab.fakes.imds.model import ImdsModel, ImdsRequest, ManualClock
from lab.world import World

WORLD = World()
V1 = WORLD.add_instance("10.0.1.10")
V2 = WORLD.add_instance("10.0.2.20", imds_tokens_required=True)
STATUSES = {200, 400, 401, 403, 404, 405}
PATHS = st.one_of(
    st.sampled_from(["/latest/api/token", "/latest/meta-data/", "/latest/meta-data/local-ipv4",
                     "/latest/meta-data/instance-id", "/latest/dynamic/instance-identity/document/",
                     "/latest/meta-data/placement/region", "/latest/meta-data/network/interfaces/macs/",
                     "/latest/user-data", "/", "//latest//meta-data", "/latest/meta-data/../api/token"]),
    st.text(max_size=40).map(lambda s: "/" + s),
)
HEADER_NAMES = st.sampled_from(["X-aws-ec2-metadata-token", "X-aws-ec2-metadata-token-ttl-seconds",
                                "X-Forwarded-For", "Host", "x-AWS-EC2-METADATA-TOKEN", "Accept"])
TTLS = st.one_of(st.integers(min_value=-10, max_value=30_000).map(str), st.text(max_size=8),
                 st.sampled_from(["", " 21600", "21600.0", "1e3", "0x10", "999999999999999999999"]))


@given(st.sampled_from(["GET", "PUT", "POST", "DELETE", "HEAD", "PATCH", "OPTIONS"]), PATHS,
       st.dictionaries(HEADER_NAMES, st.text(max_size=30), max_size=4), st.sampled_from([V1, V2, None]))
def test_any_request_gets_a_real_status(method, path, headers, instance):
    model = ImdsModel(WORLD, clock=ManualClock(start=1_750_000_000.0))
    answer = model.handle(ImdsRequest(method, path, headers), instance)
    assert answer.drop or answer.status in STATUSES, (answer.status, answer.note)


@given(TTLS)
def test_a_token_request_with_any_ttl_gets_a_token_or_a_400(ttl):
    model = ImdsModel(WORLD, clock=ManualClock(start=1_750_000_000.0))
    answer = model.handle(ImdsRequest("PUT", "/latest/api/token",
                                      {"X-aws-ec2-metadata-token-ttl-seconds": ttl}), V2)
    valid = ttl.strip().isdigit() and 1 <= int(ttl.strip()) <= 21600 if ttl.strip().isascii() else False
    if answer.status == 200:
        assert answer.body and valid, (ttl, answer.note)
    else:
        assert answer.status == 400, (ttl, answer.status, answer.note)
