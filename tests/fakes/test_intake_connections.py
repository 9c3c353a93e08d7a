"""The network payload (`/api/v1/connections`, `CollectorConnections`, type 22): the tag buffers'
encoding, the intake's decoded view and query, and a malformed body refused without losing others."""

from __future__ import annotations

import pytest
import requests

from lab.proto import process_agent_pb2 as pb
from lab.proto import process_codec
from lab.proto.tag_encoding import TagBufferError, TagSetEncoder, decode_tag_set

ROUTE = "/api/v1/connections"




def post(url: str, body: bytes) -> requests.Response:
    with requests.Session() as s:
        s.trust_env = False
        return s.post(url + ROUTE, data=body, headers={"Content-Type": "application/x-protobuf"})


def test_tag_sets_round_trip_sorted_deduplicated_and_shared():
    enc = TagSetEncoder()
    assert enc.encode(["-"]) == 0  # the agent's placeholder set keeps real indexes above 0
    first = enc.encode(["task_arn:t", "ecs_cluster_name:c", "task_arn:t"])
    again = enc.encode(["ecs_cluster_name:c", "task_arn:t"])
    other = enc.encode(["ecs_cluster_name:c", "container_name:app"])
    assert enc.encode([]) == -1
    buf = enc.buffer()
    assert buf[0] == 3, "the process agent writes version 3 buffers"
    assert first == again, "an identical set is stored once"
    assert decode_tag_set(buf, first) == ["ecs_cluster_name:c", "task_arn:t"]
    assert decode_tag_set(buf, other) == ["container_name:app", "ecs_cluster_name:c"]
    assert decode_tag_set(buf, -1) == [] and decode_tag_set(b"", 0) == []
    # "ecs_cluster_name:c" is stored once although two sets use it.
    assert buf.count(b"ecs_cluster_name:c") == 1


def test_a_tag_index_outside_the_buffer_is_an_error():
    enc = TagSetEncoder()
    enc.encode(["a:b"])
    with pytest.raises(TagBufferError, match="past the end"):
        decode_tag_set(enc.buffer(), 400)
    with pytest.raises(TagBufferError, match="version 9"):
        decode_tag_set(b"\x09" + enc.buffer()[1:], 0)


def network_payload(host: str = "i-0abc", pid: int = 4242, container: str = "c0ffee") -> bytes:
    tags = TagSetEncoder()
    tags.encode(["-"])
    container_tags = tags.encode(["task_arn:arn:aws:ecs:t/1", "ecs_cluster_name:lab", "container_name:app"])
    host_tags = tags.encode(["env:lab"])
    conn_tags = TagSetEncoder()
    body = pb.CollectorConnections(hostName=host, groupId=7, groupSize=1, hostTagsIndex=host_tags)
    body.containerForPid[pid] = container
    c = body.connections.add(pid=pid, type=pb.tcp, family=pb.v4, direction=pb.incoming,
                             lastBytesSent=120, lastBytesReceived=80, netNS=4026531840,
                             localContainerTagsIndex=container_tags,
                             tagsIdx=conn_tags.encode(["service:web"]))
    c.laddr.ip, c.laddr.port, c.laddr.containerId = "127.0.1.5", 8080, container
    c.raddr.ip, c.raddr.port = "127.0.0.1", 51000
    u = body.connections.add(pid=pid, type=pb.udp, direction=pb.outgoing,
                             localContainerTagsIndex=-1, tagsIdx=-1)
    u.laddr.ip, u.laddr.port, u.raddr.ip, u.raddr.port = "127.0.1.5", 40000, "127.0.0.1", 8125
    body.encodedTags = tags.buffer()
    body.encodedConnectionsTags = conn_tags.buffer()
    return process_codec.encode_message(process_codec.TYPE_COLLECTOR_CONNECTIONS, body)


def test_codec_round_trip_keeps_every_field_the_lab_uses():
    msg = process_codec.decode_message(network_payload())
    assert msg.header.type_name == "network" and msg.header.encoding_name == "zstd-1.x"
    body = msg.body
    assert isinstance(body, pb.CollectorConnections)
    assert body.hostName == "i-0abc" and body.containerForPid[4242] == "c0ffee"
    c = body.connections[0]
    assert (c.laddr.ip, c.laddr.port, c.laddr.containerId) == ("127.0.1.5", 8080, "c0ffee")
    assert c.raddr.port == 51000
    assert (c.direction, c.type, c.lastBytesSent, c.lastBytesReceived) == (pb.incoming, pb.tcp, 120, 80)


def test_the_intake_decodes_connections_with_their_tags(intake, client):
    assert post(intake.url, network_payload()).status_code == 200
    conns = client.connections()
    assert len(conns) == 2
    tcp = next(c for c in conns if c["type"] == "tcp")
    assert tcp["pid"] == 4242 and tcp["direction"] == "incoming" and tcp["family"] == "v4"
    assert tcp["laddr"] == {"ip": "127.0.1.5", "port": 8080, "container_id": "c0ffee"}
    assert tcp["raddr"] == {"ip": "127.0.0.1", "port": 51000}
    assert (tcp["bytes_sent"], tcp["bytes_received"]) == (120, 80)
    assert "ecs_cluster_name:lab" in tcp["container_tags"] and tcp["tags"] == ["service:web"]
    assert tcp["hostName"] == "i-0abc" and tcp["host_tags"] == ["env:lab"]
    udp = next(c for c in conns if c["type"] == "udp")
    assert udp["direction"] == "outgoing" and udp["container_tags"] == [] and udp["tags"] == []
    # Filters narrow the connections within a payload.
    assert [c["type"] for c in client.connections(container_id="c0ffee")] == ["tcp"]
    assert client.connections(pid=1) == []
    found = client.wait_for_connections(lambda c: c["raddr"]["port"] == 8125, timeout=2)
    assert found[0]["type"] == "udp"


def test_a_malformed_network_body_is_refused_counted_and_the_others_kept(intake, client):
    good = network_payload(host="i-good")
    # A tag index pointing past its buffer: the body parses, its tags cannot be read.
    bad_body = process_codec.decode_message(network_payload(host="i-bad")).body
    bad_body.connections[0].localContainerTagsIndex = 10_000
    bad = process_codec.encode_message(process_codec.TYPE_COLLECTOR_CONNECTIONS, bad_body)
    corrupt = good[:16] + b"\x28\xb5\x2f\xfd" + b"not zstd at all"
    assert post(intake.url, good).status_code == 200
    resp = post(intake.url, bad)
    assert resp.status_code == 400 and "tag set index 10000" in resp.json()["errors"][0]
    resp = post(intake.url, corrupt)
    assert resp.status_code == 400 and "network body" in resp.json()["errors"][0]
    assert post(intake.url, network_payload(host="i-after")).status_code == 200
    stats = client.routestats()[ROUTE]
    assert stats["rejected"] == 2 and stats["count"] == 2
    assert {c["hostName"] for c in client.connections()} == {"i-good", "i-after"}
    reasons = [r["reason"] for r in client.rejected(ROUTE)]
    assert any("tag set index" in r for r in reasons) and any("does not decode" in r for r in reasons)
