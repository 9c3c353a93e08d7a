"""The ignore file: known differences that must not fail a comparison.

One rule per line: a shell-style pattern (fnmatch: `*`, `?`, `[...]`) matched against a
difference's id, optionally followed by `#` and the reason. Blank lines and lines starting with
`#` are comments. Ids are `<kind>:<subject>`, exactly as report.md and report.json print them::

    # DogStatsD is off on the candidate on purpose
    metric.removed:ecs_lab.app.*            # the app's custom metrics go through DogStatsD
    tag.removed:*#task_arn                  # orchestrator-cardinality tag, not used in monitors
    scenario.newly_failing:scenarios/dogstatsd/*

An ignored difference is still reported (under "ignored", with its reason) but is not breaking.
A rule that matched nothing is reported too, so stale rules get noticed.
"""

from __future__ import annotations

import fnmatch
import re
from dataclasses import dataclass
from pathlib import Path

_ID = re.compile(r"^[a-z_*?\[\].]+:.+$")


@dataclass(frozen=True)
class IgnoreRule:
    pattern: str
    reason: str = ""
    line: int = 0

    def matches(self, difference_id: str) -> bool:
        return fnmatch.fnmatchcase(difference_id, self.pattern)


class IgnoreFileError(ValueError):
    """A line of an ignore file that is not a rule."""


def parse_ignore(text: str, source: str = "<ignore>") -> list[IgnoreRule]:
    rules = []
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        # The reason starts at a `#` preceded by whitespace, so a pattern may contain `#` (tag ids do).
        pattern, reason = line, ""
        match = re.search(r"\s#", line)
        if match:
            pattern, reason = line[:match.start()].strip(), line[match.end():].strip()
        if not _ID.match(pattern):
            raise IgnoreFileError(
                f"{source}:{number}: {raw.strip()!r} is not a rule: write one difference id pattern "
                f"per line, `<kind>:<subject>` (e.g. `metric.removed:ecs_lab.app.*`), then an optional "
                f"`# reason`")
        rules.append(IgnoreRule(pattern, reason, number))
    return rules


# Differences that depend on how long a scenario ran, not on the agent: applied unless
# `--no-default-ignore`, and reported under "ignored" like any rule.
DEFAULT_RULES = (
    IgnoreRule("metric.*:datadog.dogstatsd.client.*",
               "the app's DogStatsD client telemetry: the client adds it to a flush at most every 10 s "
               "and only when the app sends metrics, so whether it appears depends on scenario timing"),
)


def load_ignore(path: Path | str) -> list[IgnoreRule]:
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise IgnoreFileError(f"ignore file {path} cannot be read: {exc}") from None
    return parse_ignore(text, str(path))
