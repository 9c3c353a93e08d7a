#!/bin/sh
# What the dashboard's browser test (tests/sandbox/test_dashboard_browser.py) needs: Debian's chromium
# (browser downloads are not possible here) and Playwright for Python from the dev extra, without
# downloading its browsers. Run once before the tests: `sh .ci/browser-deps.sh`.
set -e
if ! command -v chromium >/dev/null 2>&1; then
    apt-get install -y chromium || { apt-get update && apt-get install -y chromium; }
fi
PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 python -m pip install "playwright>=1.40"
