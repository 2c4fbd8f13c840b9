#!/usr/bin/env bash
# Regenerates engines/thrift/gen/ from engines/thrift/pipebench.thrift.
# Needs Debian's thrift-compiler (apt-get install thrift-compiler).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
out=${1:-$root/engines/thrift/gen}
rm -rf "$out"
mkdir -p "$out"
thrift --gen py -out "$out" "$root/engines/thrift/pipebench.thrift"
