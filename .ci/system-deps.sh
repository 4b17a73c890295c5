#!/usr/bin/env bash
# Debian packages the tests use beyond Python: chromium (the real-browser UI tests, driven by Playwright's
# Python package) and postgresql (the multi-worker test's Prefect database). Idempotent: installs only what is
# missing. Without root or apt, it says what is missing and the tests that need it skip with that message.
set -euo pipefail
need=()
[ -x /usr/bin/chromium ] || need+=(chromium)
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || need+=(postgresql)
[ ${#need[@]} -eq 0 ] && exit 0
if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null; then
  echo "missing Debian packages: ${need[*]} (install them as root: apt-get install ${need[*]}); their tests skip" >&2
  exit 0
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
