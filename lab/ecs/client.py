"""Clients of the lab's control plane: every piece of lab code talks to it through `localstack-client`.

`localstack-client` is the thin boto3 wrapper users already know for http://localhost:4566, so the
lab's own calls go over the same wire (and the same endpoint) as the user's `aws --endpoint-url`,
boto3 and Terraform. Credentials are dummies: moto and LocalStack accept any.

It is pointed at the control plane through its public configuration: the session's
`localstack_host="<host>:<port>"` argument (what `$LOCALSTACK_HOST` sets when none is given). In
localstack-client, `$AWS_ENDPOINT_URL` wins over that host and `$USE_SSL` switches to https
(`localstack_client.config.get_service_endpoints`); the lab asks that same public function where a
service would go, and when the user's shell sends it elsewhere, the lab's client for that service is a
plain boto3 client at the control plane the lab started (docs/control_plane.md#clients).
"""

from __future__ import annotations

from functools import cached_property
from typing import Any
from urllib.parse import urlparse

import boto3
from botocore.config import Config
from localstack_client import config as localstack_config
from localstack_client.session import Session

from lab.world import DEFAULT_REGION

DEFAULT_ENDPOINT = "http://127.0.0.1:4566"
# Dummy credentials, as LocalStack's own docs use: the control plane checks none.
DUMMY_ACCESS_KEY = "test"
DUMMY_SECRET_KEY = "test"


class ControlPlaneClients:
    """boto3 clients bound to one control plane endpoint (moto or LocalStack)."""

    def __init__(self, endpoint: str = DEFAULT_ENDPOINT, region: str = DEFAULT_REGION) -> None:
        parsed = urlparse(endpoint)
        if not parsed.hostname or not parsed.port:
            raise ValueError(f"control plane endpoint needs a host and a port: {endpoint!r}")
        self.endpoint = endpoint.rstrip("/")
        self.region = region
        self.localstack_host = f"{parsed.hostname}:{parsed.port}"
        self._session = Session(aws_access_key_id=DUMMY_ACCESS_KEY, aws_secret_access_key=DUMMY_SECRET_KEY,
                                region_name=region, localstack_host=self.localstack_host)
        self._config = Config(retries={"max_attempts": 2, "mode": "standard"}, connect_timeout=2,
                              read_timeout=30)

    def routed_by_localstack_client(self, service: str) -> bool:
        """Whether localstack-client, given this control plane's host, sends `service` to it (False
        when the user's $AWS_ENDPOINT_URL or $USE_SSL sends it elsewhere)."""
        wanted = localstack_config.get_service_endpoint(service, localstack_host=self.localstack_host)
        return (wanted or "").rstrip("/") == self.endpoint

    def client(self, service: str) -> Any:
        if self.routed_by_localstack_client(service):
            return self._session.client(service, config=self._config)
        # The lab talks to the control plane it started, whatever the user's shell exports.
        return boto3.client(service, endpoint_url=self.endpoint, region_name=self.region,
                            aws_access_key_id=DUMMY_ACCESS_KEY, aws_secret_access_key=DUMMY_SECRET_KEY,
                            config=self._config)

    @cached_property
    def ecs(self) -> Any:
        return self.client("ecs")

    @cached_property
    def ec2(self) -> Any:
        return self.client("ec2")

    @cached_property
    def secretsmanager(self) -> Any:
        return self.client("secretsmanager")

    @cached_property
    def ssm(self) -> Any:
        return self.client("ssm")

    @cached_property
    def iam(self) -> Any:
        return self.client("iam")

    def ecs_client(self) -> Any:
        return self.ecs

    def secrets_client(self) -> Any:
        return self.secretsmanager

    def ssm_client(self) -> Any:
        return self.ssm


def ecs_client(endpoint: str = DEFAULT_ENDPOINT, region: str = DEFAULT_REGION) -> Any:
    return ControlPlaneClients(endpoint, region).ecs


def secrets_client(endpoint: str = DEFAULT_ENDPOINT, region: str = DEFAULT_REGION) -> Any:
    return ControlPlaneClients(endpoint, region).secretsmanager


def ssm_client(endpoint: str = DEFAULT_ENDPOINT, region: str = DEFAULT_REGION) -> Any:
    return ControlPlaneClients(endpoint, region).ssm
