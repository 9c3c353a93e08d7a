"""The lab's own protobuf schemas: wire-compatible subsets of Datadog's.

Field numbers and types follow DataDog/datadog-agent `pkg/proto/datadog/trace/*.proto` and
DataDog/agent-payload `proto/metrics/agent_payload.proto`, `proto/process/agent.proto`; the
messages are written here, not copied, and only hold what the lab reads or sends. Modules:

- `span_pb2`, `tracer_payload_pb2`, `agent_payload_pb2`: AgentPayload (POST /api/v0.2/traces).
- `stats_pb2`: StatsPayload's shape (sent as msgpack on /api/v0.2/stats).
- `metrics_payload_pb2`: MetricPayload (/api/v2/series), SketchPayload (/api/beta/sketches).
- `process_agent_pb2`: CollectorProc, CollectorContainer, real-time variants, ResCollector...
- `process_codec`: the v3 envelope those process messages travel in.

Regenerate with `lab/proto/regenerate.sh` after editing a .proto file.
"""
