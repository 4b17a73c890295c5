#!/usr/bin/env bash
# What the real-browser UI tests need: Debian's chromium (never a downloaded browser build) and Playwright's
# Python package in the given Python environment, which drives that chromium. Idempotent. Without root or
# apt it says what is missing, and the UI tests skip with that message.
#   .ci/install-browser.sh [PYTHON]   (default: .venv/bin/python)
set -euo pipefail
python="${1:-.venv/bin/python}"
if [ ! -x /usr/bin/chromium ]; then
  if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends chromium >/dev/null
  else
    echo "chromium is missing (as root: apt-get install chromium); the UI tests skip" >&2
  fi
fi
"$python" -c "import playwright" 2>/dev/null || "$python" -m pip install -q "playwright>=1.49"
