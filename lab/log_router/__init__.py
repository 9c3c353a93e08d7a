"""A stand-in for FireLens's log router (fluent-bit), which cannot be installed here.

- `firelens.py`: what ECS generates for a task with a FireLens log router: the fluent-bit
  configuration (forward inputs, the ECS metadata `record_modifier`, one output per app container
  from its `awsfirelens` options).
- `config.py`: reads that configuration text the way fluent-bit does (sections, keys).
- `forward.py`: the Fluentd forward protocol, server side (what Docker's fluentd log driver and
  the fluent-logger libraries send).
- `datadog_output.py`: fluent-bit's Datadog output: the records it posts to `/api/v2/logs`.
- `router.py`: `LogRouter`, the pipeline the configuration describes, running.
- `driver.py`: the container side: a process's stdout/stderr lines shipped as the fluentd log
  driver ships them.

See docs/logs.md#firelens.
"""
