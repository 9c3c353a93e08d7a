# An ECS agent image around Datadog's `datadog-serverless-compat` binary (PyPI): the lab's second,
# independent agent (a Rust trace mini-agent and DogStatsD server, not the Datadog Agent). See
# docs/agents.md for what it offers and what it does not.
#
# Built by `ecs-lab images build --agent serverless-compat` as
# ecs-agent-lab/agent-serverless-compat:<version>, on the lab's registry-free Debian base. By hand:
#   docker build -f docker/serverless-compat.Dockerfile --build-arg SERVERLESS_COMPAT_VERSION=0.19.0 \
#     -t ecs-agent-lab/agent-serverless-compat:0.19.0 .
#
# Behind an intercepting HTTPS proxy pip needs that proxy's CA: the lab's builder adds the bundle to
# the build context in memory as `ca-bundle.crt` (from PIP_CERT); only the download stage sees it.
ARG BASE_IMAGE=ecs-agent-lab/debian:bookworm

# -- stage 1: the binary from the PyPI wheel -----------------------------------------------------
FROM ${BASE_IMAGE} AS wheel
ARG SERVERLESS_COMPAT_VERSION
ENV DEBIAN_FRONTEND=noninteractive PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1
RUN apt-get update -qq \
 && apt-get install -y -qq --no-install-recommends python3 python3-venv ca-certificates >/dev/null \
 && rm -rf /var/lib/apt/lists/*
COPY ca-bundle.cr[t] /build/
RUN test -n "$SERVERLESS_COMPAT_VERSION" || { echo "SERVERLESS_COMPAT_VERSION is required"; exit 1; } \
 && python3 -m venv /build/venv \
 && if [ -s /build/ca-bundle.crt ]; then export PIP_CERT=/build/ca-bundle.crt; fi \
 && /build/venv/bin/pip download -q --no-deps --only-binary :all: -d /build/wheel \
      "datadog-serverless-compat==${SERVERLESS_COMPAT_VERSION}" \
 && python3 -m zipfile -e /build/wheel/*.whl /build/unpacked \
 && install -D -m 0755 /build/unpacked/datadog_serverless_compat/bin/linux-amd64/datadog-serverless-compat \
      /out/datadog-serverless-compat

# -- stage 2: the agent image --------------------------------------------------------------------
FROM ${BASE_IMAGE}
ARG SERVERLESS_COMPAT_VERSION
ENV DEBIAN_FRONTEND=noninteractive
# The launcher (relays, env mapping, the `agent` command) is standard-library Python; the binary
# flushes over TLS with its own roots, so ca-certificates is only for curl-style debugging.
RUN apt-get update -qq \
 && apt-get install -y -qq --no-install-recommends python3 ca-certificates >/dev/null \
 && rm -rf /var/lib/apt/lists/*
COPY --from=wheel /out/datadog-serverless-compat /opt/datadog-serverless-compat/bin/datadog-serverless-compat
COPY lab/serverless_compat.py /opt/datadog-serverless-compat/launcher.py
COPY docker/serverless-compat/entrypoint.sh /usr/local/bin/serverless-compat-entrypoint
COPY docker/serverless-compat/agent.sh /usr/local/bin/agent
RUN chmod 0755 /usr/local/bin/serverless-compat-entrypoint /usr/local/bin/agent
ENV DD_SERVERLESS_COMPAT_PATH=/opt/datadog-serverless-compat/bin/datadog-serverless-compat \
    LAB_SERVERLESS_COMPAT_VERSION=${SERVERLESS_COMPAT_VERSION} \
    PYTHONUNBUFFERED=1
LABEL ecs-agent-lab.image=agent-serverless-compat \
      ecs-agent-lab.agent-kind=serverless-compat \
      ecs-agent-lab.serverless-compat-version=${SERVERLESS_COMPAT_VERSION}
EXPOSE 8126/tcp 8125/udp
ENTRYPOINT ["serverless-compat-entrypoint"]
CMD ["agent", "run"]
