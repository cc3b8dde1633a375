#!/usr/bin/env bash
# The UI's end-to-end tests drive Debian's chromium (Playwright's own browser download is not used).
# Install it when it is missing and we may (root, apt-get available); otherwise say what to do.
set -euo pipefail
CHROMIUM=${AUTOPILOT_CHROMIUM:-/usr/bin/chromium}
if [ -x "$CHROMIUM" ]; then
  exit 0
fi
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  echo "== installing chromium for the UI end-to-end tests"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium >/dev/null \
    || { apt-get update -q >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium >/dev/null; }
else
  echo "chromium is missing at $CHROMIUM: install it (apt-get install chromium) or set AUTOPILOT_CHROMIUM;" \
       "the UI end-to-end tests cannot run without it (make test fails them; plain pytest skips them)" >&2
fi
