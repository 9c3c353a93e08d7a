#!/bin/sh
# What the dashboard's browser test (tests/sandbox/test_dashboard_browser.py) needs beside Playwright
# for Python (the dev extra; its browsers are never downloaded): Debian's chromium. `.ci/run` installs
# it with the other system tools; this is the same step for a developer's machine.
set -e
if ! command -v chromium >/dev/null 2>&1; then
    apt-get install -y chromium || { apt-get update && apt-get install -y chromium; }
fi
