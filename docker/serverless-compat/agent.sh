#!/bin/sh
# `agent` on PATH, as in the Datadog Agent image, so a task definition's health check
# ["CMD-SHELL", "agent health"] runs unchanged. The binary has no health or status command:
# those subcommands say "not offered by this agent (...)" and exit 127, like a missing command.
exec python3 /opt/datadog-serverless-compat/launcher.py agent "$@"
