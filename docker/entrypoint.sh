#!/bin/sh
# One image, several roles: the first argument names the role; anything else runs as given, so an
# ECS `entryPoint`/`command` (e.g. the docs' `sh -c "export DD_AGENT_HOST=...; exec app"`) works.
set -e
role="${1:-agent}"
case "$role" in
  agent)
    shift || true
    exec python -m lab.agent run "$@" ;;
  services)
    # IMDS (169.254.169.254:80), task metadata (169.254.170.2:80), ECS introspection (:51678).
    shift
    exec python -m lab.backends.docker_services "$@" ;;
  intake)
    shift
    exec ecs-lab fake intake "$@" ;;
  egress-proxy)
    shift
    exec python -m lab.fakes.egress_proxy "$@" ;;
  fips-proxy)
    # Debian's HAProxy with the lab's config (rendered by lab.fakes.fips_proxy.haproxy), mounted
    # where the datadog/fips-proxy image keeps its own.
    shift
    cfg="${LAB_FIPS_PROXY_CFG:-/etc/datadog-fips-proxy/datadog-fips-proxy.cfg}"
    exec haproxy -W -db -f "$cfg" "$@" ;;
  app)
    shift
    exec python -m lab.apps "$@" ;;
  *)
    exec "$@" ;;
esac
