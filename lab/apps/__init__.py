"""Sample traced apps: a Flask service under ddtrace with DogStatsD metrics, its DD_AGENT_HOST
variants (`entrypoints`), a load generator (`load`) and a process owner (`sample_app`)."""
