"""IMDS behaviour without sockets: tokens, status codes, the metadata tree, faults, caller resolution."""

from __future__ import annotations

import json

import pytest

from lab.fakes.imds.model import Fault, ImdsModel, ImdsRequest, ManualClock
from lab.world import Container, Task, World


@pytest.fixture
def world() -> World:
    w = World()
    w.add_instance("10.0.1.10", tags={"Name": "web-1", "team": "apm"})
    w.add_instance("10.0.2.20", public_ip="54.1.2.3", imds_tokens_required=True)
    return w


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(start=1_750_000_000.0)


@pytest.fixture
def model(world: World, clock: ManualClock) -> ImdsModel:
    return ImdsModel(world, clock=clock)


def get(model: ImdsModel, inst, path: str, **headers: str):
    return model.handle(ImdsRequest("GET", path, headers), inst)


def put_token(model: ImdsModel, inst, ttl: str | None = "21600", path: str = "/latest/api/token", **headers):
    if ttl is not None:
        headers["X-aws-ec2-metadata-token-ttl-seconds"] = ttl
    return model.handle(ImdsRequest("PUT", path, headers), inst)


# -- IMDSv2 tokens -------------------------------------------------------------------------------------
def test_token_put_echoes_ttl_and_token_unlocks_get(model, world):
    inst = world.instance(1)
    answer = put_token(model, inst, "300")
    assert answer.status == 200
    assert answer.headers["X-aws-ec2-metadata-token-ttl-seconds"] == "300"
    got = get(model, inst, "/latest/meta-data/local-ipv4", **{"X-aws-ec2-metadata-token": answer.body})
    assert (got.status, got.body, got.imds_version) == (200, "10.0.1.10", "v2")


@pytest.mark.parametrize("ttl", [None, "0", "21601", "-5", "abc", ""])
def test_token_put_with_missing_or_out_of_range_ttl_is_400(model, world, ttl):
    assert put_token(model, world.instance(1), ttl).status == 400


@pytest.mark.parametrize("ttl", ["1", "21600"])
def test_token_ttl_bounds_are_inclusive(model, world, ttl):
    assert put_token(model, world.instance(1), ttl).status == 200


def test_token_expires_after_its_ttl(model, world, clock):
    inst = world.instance(1)
    token = put_token(model, inst, "60").body
    hdr = {"X-aws-ec2-metadata-token": token}
    clock.advance(59)
    assert get(model, inst, "/latest/meta-data/instance-id", **hdr).status == 200
    clock.advance(1)
    assert get(model, inst, "/latest/meta-data/instance-id", **hdr).status == 401


def test_invalid_token_is_401_even_when_tokens_are_optional(model, world):
    answer = get(
        model, world.instance(1), "/latest/meta-data/instance-id", **{"X-aws-ec2-metadata-token": "nope"}
    )
    assert answer.status == 401


def test_token_of_one_instance_is_refused_by_another(model, world):
    token = put_token(model, world.instance(1)).body
    other = get(
        model, world.instance(2), "/latest/meta-data/instance-id", **{"X-aws-ec2-metadata-token": token}
    )
    assert other.status == 401


def test_tokens_required_refuses_v1_get_with_401(model, world):
    inst = world.instance(2)
    assert get(model, inst, "/latest/meta-data/local-ipv4").status == 401
    token = put_token(model, inst).body
    assert (
        get(model, inst, "/latest/meta-data/local-ipv4", **{"X-aws-ec2-metadata-token": token}).body
        == "10.0.2.20"
    )


def test_v1_get_is_served_when_tokens_are_optional(model, world):
    answer = get(model, world.instance(1), "/latest/meta-data/local-ipv4")
    assert (answer.status, answer.body, answer.imds_version) == (200, "10.0.1.10", "v1")


def test_token_put_through_a_proxy_is_403(model, world):
    assert put_token(model, world.instance(1), **{"X-Forwarded-For": "203.0.113.9"}).status == 403


def test_token_get_through_a_proxy_is_403_but_v1_get_is_not_checked(model, world):
    inst = world.instance(1)
    token = put_token(model, inst).body
    proxied = {"X-Forwarded-For": "203.0.113.9"}
    assert (
        get(
            model, inst, "/latest/meta-data/instance-id", **proxied, **{"X-aws-ec2-metadata-token": token}
        ).status
        == 403
    )
    assert get(model, inst, "/latest/meta-data/instance-id", **proxied).status == 200


def test_token_path_refuses_other_methods_with_405_and_allow(model, world):
    answer = get(model, world.instance(1), "/latest/api/token")
    assert answer.status == 405
    assert answer.headers["Allow"] == "OPTIONS, PUT"


def test_token_put_on_a_versioned_path_is_403(model, world):
    assert put_token(model, world.instance(1), path="/2021-07-15/api/token").status == 403


def test_disabled_endpoint_answers_403_to_everything(model, world):
    model.set_policy(world.instance(1).instance_id, enabled=False)
    inst = world.instance(1)
    assert get(model, inst, "/latest/meta-data/local-ipv4").status == 403
    assert put_token(model, inst).status == 403
    model.set_policy(inst.instance_id, enabled=True)
    assert get(model, inst, "/latest/meta-data/local-ipv4").status == 200


def test_token_store_is_bounded_and_counts_evictions(model, world, monkeypatch):
    monkeypatch.setattr("lab.fakes.imds.model.MAX_TOKENS_PER_INSTANCE", 3)
    inst = world.instance(1)
    tokens = [put_token(model, inst).body for _ in range(4)]
    assert model.tokens_evicted == 1
    assert model.token_state(inst, tokens[0]) == "unknown"
    assert model.token_state(inst, tokens[3]) == "valid"


# -- the metadata tree ---------------------------------------------------------------------------------
def test_identity_document_with_and_without_trailing_slash_describe_the_instance(model, world):
    inst = world.instance(1)
    plain = get(model, inst, "/latest/dynamic/instance-identity/document")
    slash = get(model, inst, "/latest/dynamic/instance-identity/document/")
    assert plain.status == slash.status == 200
    assert plain.body == slash.body
    doc = json.loads(plain.body)
    assert doc["instanceId"] == get(model, inst, "/latest/meta-data/instance-id").body
    assert doc["privateIp"] == get(model, inst, "/latest/meta-data/local-ipv4").body
    assert doc["availabilityZone"] == get(model, inst, "/latest/meta-data/placement/availability-zone").body
    assert doc["region"] == get(model, inst, "/latest/meta-data/placement/region").body == "us-east-1"
    assert doc["instanceType"] == get(model, inst, "/latest/meta-data/instance-type").body


def test_meta_data_listing_is_lf_separated_with_slash_for_directories(model, world):
    body = get(model, world.instance(1), "/latest/meta-data/").body
    lines = body.split("\n")
    assert not body.endswith("\n")
    for entry in ("instance-id", "local-ipv4", "hostname", "mac", "network/", "placement/", "iam/", "tags/"):
        assert entry in lines
    assert "public-ipv4" not in lines


def test_mac_tree_matches_the_instance(model, world):
    inst = world.instance(1)
    mac = get(model, inst, "/latest/meta-data/mac").body
    assert get(model, inst, "/latest/meta-data/network/interfaces/macs/").body == f"{mac}/"
    base = f"/latest/meta-data/network/interfaces/macs/{mac}/"
    assert get(model, inst, base + "local-ipv4s").body == inst.private_ip
    assert get(model, inst, base + "device-number").body == "0"
    assert get(model, inst, base + "subnet-ipv4-cidr-block").body == "10.0.1.0/24"
    assert get(model, inst, base + "vpc-id").body.startswith("vpc-")
    assert get(model, inst, base + "subnet-id").body.startswith("subnet-")
    # IPv4-only interface: the agent treats this 404 as "no IPv6 CIDRs".
    assert get(model, inst, base + "vpc-ipv6-cidr-blocks").status == 404
    # Both instances are in one VPC, on different subnets.
    other = world.instance(2)
    obase = f"/latest/meta-data/network/interfaces/macs/{other.mac}/"
    assert (
        get(model, other, obase + "vpc-id", **{"X-aws-ec2-metadata-token": put_token(model, other).body}).body
        == get(model, inst, base + "vpc-id").body
    )


def test_hostname_and_local_hostname_are_the_ip_based_name(model, world):
    inst = world.instance(1)
    assert get(model, inst, "/latest/meta-data/hostname").body == "ip-10-0-1-10.ec2.internal"
    assert get(model, inst, "/latest/meta-data/local-hostname").body == "ip-10-0-1-10.ec2.internal"


def test_public_ipv4_is_404_without_a_public_address(model, world):
    assert get(model, world.instance(1), "/latest/meta-data/public-ipv4").status == 404
    inst2 = world.instance(2)
    token = {"X-aws-ec2-metadata-token": put_token(model, inst2).body}
    assert get(model, inst2, "/latest/meta-data/public-ipv4", **token).body == "54.1.2.3"
    assert (
        get(model, inst2, "/latest/meta-data/public-hostname", **token).body
        == "ec2-54-1-2-3.compute-1.amazonaws.com"
    )


def test_tags_are_listed_and_served_and_404_when_tags_are_off(model, world):
    inst = world.instance(1)
    assert get(model, inst, "/latest/meta-data/tags/instance").body.split("\n") == ["Name", "team"]
    assert get(model, inst, "/latest/meta-data/tags/instance/team").body == "apm"
    model.set_policy(inst.instance_id, tags_enabled=False)
    assert get(model, inst, "/latest/meta-data/tags/instance").status == 404


def test_iam_role_credentials_and_info(model, world, clock):
    inst = world.instance(1)
    assert get(model, inst, "/latest/meta-data/iam/security-credentials/").body == "ecs-lab-instance-role"
    creds = json.loads(
        get(model, inst, "/latest/meta-data/iam/security-credentials/ecs-lab-instance-role").body
    )
    assert creds["Code"] == "Success" and creds["Type"] == "AWS-HMAC"
    assert creds["AccessKeyId"].startswith("ASIA") and len(creds["AccessKeyId"]) == 20
    assert len(creds["SecretAccessKey"]) == 40 and creds["Token"]
    assert creds["Expiration"] > creds["LastUpdated"]
    info = json.loads(get(model, inst, "/latest/meta-data/iam/info").body)
    assert info["InstanceProfileArn"] == "arn:aws:iam::123456789012:instance-profile/ecs-lab-instance-role"
    # Credentials rotate: an hour later a new key is served.
    clock.advance(3600)
    later = json.loads(
        get(model, inst, "/latest/meta-data/iam/security-credentials/ecs-lab-instance-role").body
    )
    assert later["AccessKeyId"] != creds["AccessKeyId"]


def test_no_instance_profile_means_iam_is_404(world, clock):
    w = World()
    inst = w.add_instance("10.0.9.9", iam_role=None)
    m = ImdsModel(w, clock=clock)
    assert get(m, inst, "/latest/meta-data/iam/security-credentials/").status == 404


def test_spot_action_is_404_until_injected(model, world, clock):
    inst = world.instance(1)
    assert get(model, inst, "/latest/meta-data/spot/instance-action").status == 404
    assert get(model, inst, "/latest/meta-data/instance-life-cycle").body == "on-demand"
    model.interrupt_spot(inst.instance_id, "stop")
    action = json.loads(get(model, inst, "/latest/meta-data/spot/instance-action").body)
    assert action["action"] == "stop"
    assert action["time"] == "2025-06-15T15:08:40Z"  # clock + 120 s, RFC 3339 as the agent parses it
    assert get(model, inst, "/latest/meta-data/instance-life-cycle").body == "spot"
    model.clear_spot(inst.instance_id)
    assert get(model, inst, "/latest/meta-data/spot/instance-action").status == 404


def test_unknown_paths_and_versions_are_404_and_versions_are_listed(model, world):
    inst = world.instance(1)
    assert get(model, inst, "/latest/meta-data/nope").status == 404
    assert get(model, inst, "/1999-01-01/meta-data/").status == 404
    assert get(model, inst, "/2021-07-15/meta-data/local-ipv4").body == "10.0.1.10"
    assert get(model, inst, "/").body.split("\n")[-1] == "latest"
    assert get(model, inst, "/latest/").body == "dynamic\nmeta-data"


def test_az_id_follows_ec2_naming(world, clock):
    w = World()
    w.cluster.region = "ap-southeast-2"
    inst = w.add_instance("10.1.0.5")
    m = ImdsModel(w, clock=clock)
    assert get(m, inst, "/latest/meta-data/placement/availability-zone").body == "ap-southeast-2a"
    assert get(m, inst, "/latest/meta-data/placement/availability-zone-id").body == "apse2-az1"


# -- faults and stats ------------------------------------------------------------------------------------
def test_fault_status_applies_to_matching_path_and_instance_only(model, world):
    a, b = world.instance(1), world.instance(2)
    model.faults.add(path="/latest/meta-data/*", instance_id=a.instance_id, status=503)
    assert get(model, a, "/latest/meta-data/local-ipv4").status == 503
    assert get(model, a, "/latest/dynamic/instance-identity/document").status == 200
    assert get(model, b, "/latest/meta-data/local-ipv4").status == 401  # b requires tokens; no fault


def test_fault_times_retires_the_rule(model, world):
    inst = world.instance(1)
    model.faults.add(path="/latest/meta-data/instance-id", drop=True, times=2)
    assert get(model, inst, "/latest/meta-data/instance-id").drop
    assert get(model, inst, "/latest/meta-data/instance-id").drop
    assert get(model, inst, "/latest/meta-data/instance-id").status == 200
    assert model.faults.list() == []


def test_fault_delay_is_handed_to_the_wire_with_a_normal_answer(model, world):
    model.faults.add(path="*", delay=0.25)
    answer = get(model, world.instance(1), "/latest/meta-data/local-ipv4")
    assert (answer.status, answer.delay, answer.body) == (200, 0.25, "10.0.1.10")


@pytest.mark.parametrize(
    "doc, message",
    [
        ({"path": "*"}, "at least one"),
        ({"status": 42}, "HTTP status"),
        ({"delay_ms": -1}, ">= 0"),
        ({"drop": True, "colour": "red"}, "unknown fault field"),
    ],
)
def test_bad_fault_specs_are_refused_with_a_reason(doc, message):
    with pytest.raises(ValueError, match=message):
        Fault.from_json(doc)


def test_stats_count_per_path_status_and_version(model, world):
    inst = world.instance(1)
    get(model, inst, "/latest/meta-data/local-ipv4")
    get(model, inst, "/latest/meta-data/nope")
    put_token(model, inst)
    assert model.stats.count(path="/latest/meta-data/local-ipv4", status=200) == 1
    assert model.stats.count(status=404, instance_id=inst.instance_id) == 1
    assert model.stats.count(method="PUT") == 1
    assert [r.imds_version for r in model.stats.recent()] == ["v1", "v1", "token"]


# -- who is calling ----------------------------------------------------------------------------------------
def test_resolve_by_container_address_instance_ip_and_route(model, world):
    inst2 = world.instance(2)
    world.add_task(inst2, Task("web", 1, [Container("app", "web:1", ipv4_addresses=["169.254.168.7"])]))
    assert model.resolve("169.254.168.7")[0] is inst2
    assert model.resolve("10.0.1.10")[0] is world.instance(1)
    assert model.resolve("172.30.9.4")[0] is None
    model.route("172.30.9.0/24", inst2)
    assert model.resolve("172.30.9.4")[0] is inst2


def test_unresolved_caller_gets_404_with_the_reason(model, world):
    instance, why = model.resolve("192.0.2.1")
    answer = model.handle(ImdsRequest("GET", "/latest/meta-data/local-ipv4", {}, "192.0.2.1"), instance, why)
    assert answer.status == 404
    assert "192.0.2.1" in answer.note
    assert model.stats.count(instance_id=None, status=404) == 1


# -- the hop limit (HttpPutResponseHopLimit) ------------------------------------------------------------
def test_token_answer_is_dropped_for_a_caller_further_than_the_hop_limit(model, world):
    inst = world.instance(1)
    model.set_policy(inst.instance_id, hop_limit=1)
    far = model.handle(
        ImdsRequest("PUT", "/latest/api/token", {"X-aws-ec2-metadata-token-ttl-seconds": "60"}, hops=2), inst
    )
    assert far.drop and far.status == 0 and "hop" in far.note
    near = model.handle(
        ImdsRequest("PUT", "/latest/api/token", {"X-aws-ec2-metadata-token-ttl-seconds": "60"}, hops=1), inst
    )
    assert near.status == 200 and near.body
    # A limit of 2 (what bridge mode needs) lets the bridge-mode caller have its token.
    model.set_policy(inst.instance_id, hop_limit=2)
    ok = model.handle(
        ImdsRequest("PUT", "/latest/api/token", {"X-aws-ec2-metadata-token-ttl-seconds": "60"}, hops=2), inst
    )
    assert ok.status == 200 and ok.body


def test_hop_limit_holds_only_the_token_answer(model, world):
    # GETs are not held to it here (the limit is named for the PUT response); a v1 GET still answers.
    inst = world.instance(1)
    model.set_policy(inst.instance_id, hop_limit=1)
    got = model.handle(ImdsRequest("GET", "/latest/meta-data/local-ipv4", {}, hops=2), inst)
    assert (got.status, got.body) == (200, "10.0.1.10")
