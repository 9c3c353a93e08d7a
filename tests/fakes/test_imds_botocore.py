"""botocore against the fake IMDS: its IMDS fetchers and its default credential chain.

`AWS_EC2_METADATA_SERVICE_ENDPOINT` points botocore at the fake, and a guard on urllib3's connect
fails the test if anything tries 169.254.169.254 (on this host that address belongs to someone else).
"""

from __future__ import annotations

import botocore.session
import pytest
import urllib3.util.connection
from botocore.utils import IMDSRegionProvider, InstanceMetadataFetcher, InstanceMetadataRegionFetcher

from lab.world import World

ROLE = "ecs-lab-instance-role"
CREDS_PATH = f"/latest/meta-data/iam/security-credentials/{ROLE}"


@pytest.fixture(autouse=True)
def no_link_local(monkeypatch):
    """Refuse (and fail on) any connection to the real metadata addresses."""
    real = urllib3.util.connection.create_connection
    seen: list[str] = []

    def guarded(address, *args, **kwargs):
        host = str(address[0])
        seen.append(host)
        if host.startswith("169.254.") or host.lower().startswith("fd00:ec2"):
            raise AssertionError(f"a client tried the real metadata address {host}")
        return real(address, *args, **kwargs)

    monkeypatch.setattr(urllib3.util.connection, "create_connection", guarded)
    yield seen
    assert all(h.startswith("127.") for h in seen), seen


@pytest.fixture
def world() -> World:
    w = World()
    w.cluster.region = "eu-west-3"
    w.add_instance("127.0.41.1")
    w.add_instance("127.0.41.2", imds_tokens_required=True)
    return w


def test_instance_metadata_fetcher_gets_role_credentials_with_imdsv2(imds, world):
    inst = world.instance(2)
    expected = imds.model.credentials(inst)
    creds = InstanceMetadataFetcher(
        timeout=2, num_attempts=1, base_url=imds.url(inst)
    ).retrieve_iam_role_credentials()
    assert creds["role_name"] == ROLE
    assert creds["access_key"] == expected["AccessKeyId"]
    assert creds["secret_key"] == expected["SecretAccessKey"]
    assert creds["token"] == expected["Token"]
    assert creds["expiry_time"] == expected["Expiration"]
    versions = [r.imds_version for r in imds.model.stats.recent()]
    assert versions == ["token", "v2", "v2"]


def test_fetcher_falls_back_to_v1_when_the_token_put_is_refused(imds, world):
    # botocore reads 403/404/405 on the token PUT as "no IMDSv2 here" and retries tokenless.
    inst = world.instance(1)
    imds.model.faults.add(path="/latest/api/token", status=405)
    creds = InstanceMetadataFetcher(
        timeout=2, num_attempts=1, base_url=imds.url(inst)
    ).retrieve_iam_role_credentials()
    assert creds["role_name"] == ROLE
    assert imds.model.stats.count(path="/latest/meta-data/iam/*", status=200) == 2
    assert {r.imds_version for r in imds.model.stats.recent() if r.path.startswith("/latest/meta-data")} == {
        "v1"
    }


def test_fetcher_gets_nothing_when_tokens_are_required_and_the_put_fails(imds, world):
    inst = world.instance(2)
    imds.model.faults.add(path="/latest/api/token", status=403)
    creds = InstanceMetadataFetcher(
        timeout=2, num_attempts=1, base_url=imds.url(inst)
    ).retrieve_iam_role_credentials()
    assert creds == {}
    assert imds.model.stats.count(path="/latest/meta-data/iam/security-credentials/", status=401) == 1


def test_fetcher_survives_a_dropped_request_with_a_retry(imds, world):
    inst = world.instance(1)
    imds.model.faults.add(path=CREDS_PATH, drop=True, times=1)
    creds = InstanceMetadataFetcher(
        timeout=2, num_attempts=2, base_url=imds.url(inst)
    ).retrieve_iam_role_credentials()
    assert creds["role_name"] == ROLE
    assert imds.model.stats.count(path=CREDS_PATH, status="dropped") == 1


def test_region_fetcher_reads_the_instance_region(imds, world):
    region = InstanceMetadataRegionFetcher(
        timeout=2, num_attempts=1, base_url=imds.url(world.instance(2))
    ).retrieve_region()
    assert region == "eu-west-3"


@pytest.fixture
def aws_env(monkeypatch, tmp_path):
    """An environment with no credentials anywhere but IMDS, and IMDS pointed at the lab."""
    for var in (
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_SESSION_TOKEN",
        "AWS_PROFILE",
        "AWS_DEFAULT_PROFILE",
        "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
        "AWS_CONTAINER_CREDENTIALS_FULL_URI",
        "AWS_WEB_IDENTITY_TOKEN_FILE",
        "AWS_ROLE_ARN",
        "AWS_REGION",
        "AWS_DEFAULT_REGION",
        "AWS_EC2_METADATA_V1_DISABLED",
    ):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "credentials"))

    def point_at(url: str) -> None:
        monkeypatch.setenv("AWS_EC2_METADATA_SERVICE_ENDPOINT", url)
        # Only now that the endpoint is the lab's may IMDS be enabled.
        monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "false")

    return point_at


def test_botocore_session_resolves_instance_role_credentials_from_the_fake(
    imds, world, aws_env, no_link_local
):
    inst = world.instance(2)
    aws_env(imds.url(inst))
    expected = imds.model.credentials(inst)
    session = botocore.session.get_session()
    creds = session.get_credentials()
    assert creds is not None
    assert creds.method == "iam-role"
    frozen = creds.get_frozen_credentials()
    assert (frozen.access_key, frozen.secret_key, frozen.token) == (
        expected["AccessKeyId"],
        expected["SecretAccessKey"],
        expected["Token"],
    )
    assert imds.model.stats.count(instance_id=inst.instance_id, path="/latest/api/token", status=200) >= 1
    assert no_link_local, "the connection guard saw no connection: it is not on botocore's path"


def test_botocore_imds_region_provider_reads_the_fake(imds, world, aws_env):
    aws_env(imds.url(world.instance(1)))
    assert IMDSRegionProvider(botocore.session.get_session()).provide() == "eu-west-3"


def test_botocore_session_finds_no_credentials_when_imds_is_turned_off(imds, world, aws_env):
    inst = world.instance(1)
    imds.model.set_policy(inst.instance_id, enabled=False)
    aws_env(imds.url(inst))
    assert botocore.session.get_session().get_credentials() is None
    assert imds.model.stats.count(instance_id=inst.instance_id, status=403) >= 1
