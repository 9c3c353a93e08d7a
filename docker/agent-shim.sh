#!/bin/sh
# `agent` on PATH, so the docs' task definition health check ["CMD-SHELL", "agent health"] runs
# unchanged against the lab's emulated agent (the real image ships /opt/datadog-agent/bin/agent).
exec ecs-lab agent "$@"
