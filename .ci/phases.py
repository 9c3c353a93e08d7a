"""Read the JUnit reports of `tox -e ci`'s pytest phases; fail unless every phase ran tests.

    python3 .ci/phases.py REPORT_DIR

pytest already exits non-zero when it collects nothing, but a phase whose tests were all skipped
(or a phase that never wrote its report because tox stopped before it) would still let a run look
green. This prints one line per phase (tests, failures, errors, skips, pytest's own time) and exits
1 when a report is missing, a phase has failures or errors, or ran no test at all. Standard library
only: it runs on the machine's python3, outside tox's environment.
"""

from __future__ import annotations

import sys
import xml.etree.ElementTree as ET
from pathlib import Path

# tox.ini's [testenv:ci] writes these, in this order.
PHASES = ("unit", "scenarios", "docker-tests", "docker-sandbox", "docker-scenarios")


def phase_counts(report: Path) -> dict[str, float]:
    """Totals over the report's test suites (pytest writes one `testsuite`, maybe inside `testsuites`)."""
    root = ET.parse(report).getroot()
    suites = [root] if root.tag == "testsuite" else root.findall("testsuite")
    totals = {"tests": 0.0, "failures": 0.0, "errors": 0.0, "skipped": 0.0, "time": 0.0}
    for suite in suites:
        for key in totals:
            totals[key] += float(suite.get(key, 0) or 0)
    return totals


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print(__doc__.strip().splitlines()[2].strip(), file=sys.stderr)
        return 2
    report_dir = Path(argv[0])
    problems = []
    print("ci: test phases")
    for phase in PHASES:
        report = report_dir / f"{phase}.xml"
        if not report.is_file():
            problems.append(f"{phase}: no report at {report} (the phase did not run to its end)")
            print(f"  {phase:<17} no report")
            continue
        c = phase_counts(report)
        ran = int(c["tests"] - c["skipped"])
        print(f"  {phase:<17} {ran:4d} ran, {int(c['failures'])} failed, {int(c['errors'])} errors, "
              f"{int(c['skipped'])} skipped, {c['time']:6.1f}s")
        if ran <= 0:
            problems.append(f"{phase}: no test ran ({int(c['tests'])} collected, "
                            f"{int(c['skipped'])} skipped)")
        if c["failures"] or c["errors"]:
            problems.append(f"{phase}: {int(c['failures'])} failed, {int(c['errors'])} errors")
    for problem in problems:
        print(f"ci: {problem}")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
