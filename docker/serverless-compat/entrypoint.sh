#!/bin/sh
# With no command (or `agent run`) the image is the agent, like the Datadog Agent image; anything
# else runs as given, so an ECS `entryPoint`/`command` override works.
set -e
if [ "$#" -eq 0 ] || { [ "$1" = agent ] && { [ "$#" -eq 1 ] || [ "$2" = run ]; }; }; then
  exec python3 /opt/datadog-serverless-compat/launcher.py run
fi
exec "$@"
