"""The fake Datadog intake: what the agent sends, kept, decoded, and queryable.

- `store.IntakeStore`: socket-free memory of payloads (sequence cursors, sessions, bounded with
  counted eviction, rejected payloads kept aside).
- `decode/`: one decoder per payload kind (traces, APM stats, series, sketches, check runs,
  process messages, JSON routes) plus Content-Encoding handling.
- `server.IntakeServer`: the agent's routes and the fakeintake-compatible query API.
- `public_api`: a datadog-api-client-compatible subset (metrics query, span search, validate).
- `client.IntakeClient`: the query API from Python, with waiting helpers for scenarios.
"""
