"""Task definitions, fuzzed: any JSON text, and the shipped agent task definition with fields
replaced by odd values, is either refused with the CLI's TaskDefinitionError or translated into
container specs; translating never fails with a KeyError/TypeError/AttributeError."""

from __future__ import annotations

import copy
import json
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from lab.ecs import taskdef, translate

SHIPPED = json.loads((Path(taskdef.__file__).parent / "taskdefs" / "datadog-agent-ecs.json").read_text())
ODD = st.recursive(st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False),
                             st.text(max_size=8)),
                   lambda inner: st.one_of(st.lists(inner, max_size=3),
                                           st.dictionaries(st.text(max_size=8), inner, max_size=3)),
                   max_leaves=8)
TRANSLATE_REFUSALS = (translate.SecretResolutionError, taskdef.TaskDefinitionError,
                      getattr(translate, "UnsupportedField", taskdef.TaskDefinitionError))


def _paths(doc, prefix=()):
    """Every (path) into the document: keys of dicts and indexes of lists."""
    yield prefix
    if isinstance(doc, dict):
        for k, v in doc.items():
            yield from _paths(v, (*prefix, k))
    elif isinstance(doc, list):
        for i, v in enumerate(doc):
            yield from _paths(v, (*prefix, i))


PATHS = [p for p in _paths(SHIPPED) if p]
# validate() loads botocore's ECS model once (about 0.65 s, cached after): loaded here, so the
# first example is not timed with it against the profile's 500 ms deadline (a FlakyFailure: the
# same example took 0.2 ms when Hypothesis replayed it).
taskdef._input_shape()


def _replace(doc, path, value):
    out = copy.deepcopy(doc)
    node = out
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    return out


@given(st.text(max_size=200))
def test_any_text_parses_or_gets_the_clis_error(text):
    try:
        taskdef.parse_json(text)
    except taskdef.TaskDefinitionError as exc:
        assert str(exc).startswith("Error parsing parameter 'cli-input-json'")


@settings(max_examples=120)
@given(st.lists(st.tuples(st.sampled_from(PATHS), ODD), min_size=1, max_size=3))
def test_odd_fields_are_refused_clearly_or_translated(changes):
    doc = SHIPPED
    for path, value in changes:
        try:
            doc = _replace(doc, path, value)
        except (KeyError, IndexError, TypeError):
            continue  # an earlier change removed the path
    try:
        taskdef.validate(doc)
    except taskdef.TaskDefinitionError as exc:
        assert str(exc) and exc.fields
        return
    try:
        specs = translate.container_specs(doc)
    except TRANSLATE_REFUSALS as exc:
        assert str(exc)
        return
    assert [s.name for s in specs] == [c["name"] for c in doc["containerDefinitions"]]
