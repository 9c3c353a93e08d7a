"""`ecs-lab compare`: run the same scenarios against two agents and say what changed.

Pre-upgrade validation: a baseline agent (the one in production) and a candidate (the upgrade) run
the same scenarios, each in its own pytest process with the capture plugin (`capture.py`), which
keeps every intake payload per scenario. `surface.py` reduces one agent's captures to what a
Datadog user depends on (endpoints, metric names and types, tag keys, ECS tags, span fields,
process fields, check runs, host metadata), `diff.py` compares two surfaces, and `report.py`
writes report.md, report.json and HTML. Removed metrics, tags or endpoints and scenarios that pass
on the baseline but fail on the candidate are breaking (exit 1); additions are informational.
"""
