#!/usr/bin/env bash
# Sets up pipebench in ./.venv on a fresh Debian machine: `scripts/bootstrap.sh [EXTRAS]`.
#   scripts/bootstrap.sh           the harness, every system it runs and the model workloads,
#                                  with the full torchpipe wheel compiled (extra `all`)
#   scripts/bootstrap.sh test      plus what the test suite needs
#   scripts/bootstrap.sh core      only the core: run (pipe), report, compare, export
#   scripts/bootstrap.sh distributed   plus Ray, for `bench run --cluster` (extras combine: test,distributed)
# Idempotent: a second run only checks.
set -euo pipefail
cd "$(dirname "$0")/.."
extras=${1:-all}
[ "$extras" = core ] && extras=

apt_install() {  # Debian packages, only when missing and only as root.
  local missing=()
  for pkg in "$@"; do dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg"); done
  [ ${#missing[@]} -eq 0 ] && return 0
  if [ "$(id -u)" -ne 0 ]; then
    echo "bootstrap: please install these Debian packages: ${missing[*]}" >&2
    exit 1
  fi
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
}

# Triton's Python-backend stub links the system libpython3.11.
apt_install libpython3.11
# The tests check that the committed Thrift code matches the IDL, and open the HTML report
# in a headless browser.
[[ ",$extras," == *,test,* ]] && apt_install thrift-compiler chromium

[ -x .venv/bin/python ] || python3.11 -m venv .venv
.venv/bin/pip install --quiet --disable-pip-version-check -e ".${extras:+[$extras]}"
# perf_analyzer (client: perf_analyzer) ships only in the tritonclient 2.51.0 wheel: fetch
# and unpack it now, at install time, so a run never downloads (best effort: a run without
# it explains what to do).
.venv/bin/python -c "from engines.triton.perf_analyzer import binary; binary()" 2>/dev/null \
  || echo "bootstrap: perf_analyzer not fetched (only client: perf_analyzer needs it)" >&2
# The full torchpipe wheel compiles its core on first import (minutes): do it now, once, so a
# measured run never does; this also checks that its DecodeMat decodes cv2's pixels.
# The compiler's work folder goes in a folder of our own, removed after (the compiled core
# lives in ~/.cache/omniback; /tmp/omniback-torch* would be left behind).
if [[ ",$extras," == *,all,* || ",$extras," == *,test,* ]]; then
  build_tmp=$(mktemp -d)
  trap 'rm -rf "$build_tmp"' EXIT
  TMPDIR=$build_tmp .venv/bin/python -m engines.torchpipe.full
fi
echo "bootstrap: ready (.venv)" >&2
