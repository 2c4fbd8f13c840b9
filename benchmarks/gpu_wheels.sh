#!/usr/bin/env bash
# Fills .whl/ (git-ignored) with the wheels benchmarks/gpu_resnet.sh needs on the GPU
# machine, whose image (Python 3.12, torch, numpy, onnx, pandas, rich, typer, yaml...) lacks
# only these. Run here, where PyPI is reachable; pass another Python version as $1.
set -euo pipefail
cd "$(dirname "$0")/.."
version=${1:-3.12}
grep -qx '/.whl/' .git/info/exclude 2>/dev/null || echo '/.whl/' >>.git/info/exclude
rm -rf .whl && mkdir .whl
pip=${PIP:-.venv/bin/pip}
"$pip" download --quiet --no-deps --only-binary=:all: --python-version "$version" \
  --implementation cp --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 \
  --platform manylinux2014_x86_64 -d .whl \
  "pydantic==$("$pip" show pydantic | sed -n 's/^Version: //p')" \
  "pydantic-core==$("$pip" show pydantic-core | sed -n 's/^Version: //p')" \
  annotated-types typing-inspection typing-extensions thrift==0.25.0
du -sh .whl && ls .whl
