#!/usr/bin/env bash
# Runs tests/report_screenshot_test.py (reports rendered by headless Chromium)
# with Debian's python3: $1 is parley_sim, $2 the smoke scenario.
set -euo pipefail
exec /usr/bin/python3 tests/report_screenshot_test.py "$@"
