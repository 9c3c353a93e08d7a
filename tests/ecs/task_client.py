"""A client inside a running task: what it reads about its instance and its task.

Run as a script in a task's container (`python3 -c "$(cat task_client.py)" PREFIX`, through the
backend's `exec_in_container`), standard library only, so it runs wherever the container has a
Python 3. It finds every surface the way code in an ECS container does, from its environment:

- IMDS at `$AWS_EC2_METADATA_SERVICE_ENDPOINT` (botocore's variable; the lab writes it into every
  task container), IMDSv2: a token first (`PUT /latest/api/token`), then every GET with it;
- the ECS container agent's introspection API at `$DD_ECS_AGENT_URL` (what the Datadog agent is
  told; on EC2 the agent's own port 51678);
- task metadata v4 at `$ECS_CONTAINER_METADATA_URI_V4`.

It prints one line, `TASK-CLIENT <json>`, with every answer. Every URL must start with PREFIX (the
backend's address block for these surfaces: loopback on the local backend, the lab's own link-local
network inside a docker container), so a missing variable can never send it to someone else's
169.254.169.254.
"""

from __future__ import annotations

import json
import os
import socket
import sys
import urllib.parse
import urllib.request

_DIRECT = urllib.request.build_opener(urllib.request.ProxyHandler({}))
TIMEOUT = 10


def _checked(url: str, prefix: str) -> str:
    host = urllib.parse.urlsplit(url).hostname or ""
    if not host.startswith(prefix):
        raise SystemExit(f"refusing {url}: not in {prefix}*")
    return url.rstrip("/")


def _fetch(url: str, method: str = "GET", headers: dict | None = None) -> str:
    req = urllib.request.Request(url, method=method, headers=headers or {})
    with _DIRECT.open(req, timeout=TIMEOUT) as resp:
        return resp.read().decode()


def _raw_exchange(base: str, path: str, token: str, requests: int) -> dict:
    """`requests` GETs of `path` on one keep-alive connection, as an HTTP/1.1 client sends them: the
    status lines, each answer's Connection header, and whether the server then closed the socket."""
    parts = urllib.parse.urlsplit(base)
    out: dict = {"statuses": [], "connection": [], "closed_by_server": False}
    with socket.create_connection((parts.hostname, parts.port or 80), timeout=TIMEOUT) as sock:
        reader = sock.makefile("rb")
        for _ in range(requests):
            try:
                sock.sendall(f"GET {path} HTTP/1.1\r\nHost: {parts.hostname}\r\n"
                             f"X-aws-ec2-metadata-token: {token}\r\n\r\n".encode())
                status = reader.readline()
            except (ConnectionResetError, BrokenPipeError):  # a request sent to a closed socket
                status = b""
            if not status:
                out["closed_by_server"] = True
                break
            out["statuses"].append(int(status.split()[1]))
            length, connection = 0, None
            while (line := reader.readline().strip()):
                name, _, value = line.decode().partition(":")
                if name.lower() == "content-length":
                    length = int(value)
                elif name.lower() == "connection":
                    connection = value.strip().lower()
            out["connection"].append(connection)
            reader.read(length)
        else:
            # After the last answer: does the server hang up (EOF at once) or keep the socket open?
            sock.settimeout(2)
            try:
                out["closed_by_server"] = sock.recv(1) == b""
            except TimeoutError:
                out["closed_by_server"] = False
    return out


def _metadata_file(path: str | None) -> dict | None:
    """The ECS container metadata file, when the agent enabled it for this container."""
    if not path:
        return None
    with open(path) as f:
        return json.load(f)


def read_everything(prefix: str) -> dict:
    env = os.environ
    imds = _checked(env["AWS_EC2_METADATA_SERVICE_ENDPOINT"], prefix)
    introspection = _checked(env["DD_ECS_AGENT_URL"], prefix)
    v4 = _checked(env["ECS_CONTAINER_METADATA_URI_V4"], prefix)
    token = _fetch(imds + "/latest/api/token", "PUT", {"X-aws-ec2-metadata-token-ttl-seconds": "60"})
    auth = {"X-aws-ec2-metadata-token": token}
    meta = imds + "/latest/meta-data/"
    md = {path: _fetch(meta + path, headers=auth)
          for path in ("instance-id", "mac", "local-ipv4", "placement/availability-zone", "security-groups",
                       "iam/info", "reservation-id", "local-hostname", "hostname", "instance-type", "ami-id",
                       "placement/region")}
    # The agent asks with the trailing slash.
    md["identity"] = json.loads(_fetch(imds + "/latest/dynamic/instance-identity/document/", headers=auth))
    for leaf in ("vpc-id", "subnet-id", "interface-id", "security-group-ids", "owner-id", "local-ipv4s",
                 "local-hostname"):
        md["net/" + leaf] = _fetch(meta + f"network/interfaces/macs/{md['mac']}/{leaf}", headers=auth)
    return {
        "md": md,
        "environment": {key: env.get(key) for key in ("HOSTNAME", "AWS_EXECUTION_ENV")},
        "metadata_file": _metadata_file(env.get("ECS_CONTAINER_METADATA_FILE")),
        # One answer that exists and one that does not, each on a connection of its own.
        "imds_found": _raw_exchange(imds, "/latest/meta-data/instance-id", token, 2),
        "imds_missing": _raw_exchange(imds, "/latest/meta-data/ecs-lab-no-such-category", token, 2),
        "intro_meta": json.loads(_fetch(introspection + "/v1/metadata")),
        "intro_tasks": json.loads(_fetch(introspection + "/v1/tasks"))["Tasks"],
        "v4_container": json.loads(_fetch(v4)),
        "v4_task": json.loads(_fetch(v4 + "/task")),
        "v4_tags": json.loads(_fetch(v4 + "/taskWithTags")),
    }


if __name__ == "__main__":
    print("TASK-CLIENT " + json.dumps(read_everything(sys.argv[1])))
