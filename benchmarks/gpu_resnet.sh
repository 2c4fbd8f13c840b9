#!/usr/bin/env bash
# The resnet scenarios with CUDA / TensorRT on a GPU machine, in ONE short prepared run.
#
#   benchmarks/gpu_wheels.sh                 # here, once: .whl/ with what the GPU image lacks
#   device run: bash benchmarks/gpu_resnet.sh   (carry: [".whl"], timeout_s: 540)
#
# Writes to $OUT (default results/gpu): gpu_resnet.md (the tables), results.json (every
# record), environment.json (what the machine has), gpu_tests.txt (the GPU tests' output),
# bench.log. No network is needed: the GPU image's Python has torch, numpy, onnx...; the
# few pure packages it lacks (pydantic, thrift) come from .whl/ when carried. Runtimes that
# cannot run there (no TensorRT, a CPU-only onnxruntime) are skipped with the reason.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-results/gpu}
mkdir -p "$OUT"
PY=${PYTHON:-python3}
if [ -x .venv/bin/python ] && [ -z "${PYTHON:-}" ] && ! command -v nvidia-smi >/dev/null; then
  PY=.venv/bin/python  # a dry run on the development machine
fi
export PYTHONUNBUFFERED=1 PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"

{ command -v nvidia-smi >/dev/null && nvidia-smi -L; "$PY" --version; } >"$OUT/bench.log" 2>&1
cat "$OUT/bench.log" >&2
importable() { "$PY" -c "import harness.cli, engines.workloads" 2>>"$OUT/bench.log"; }
if ! importable && compgen -G ".whl/*.whl" >/dev/null; then
  site=/tmp/pipebench-site
  "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target "$site" .whl/*.whl || { echo "gpu_resnet: installing .whl/ failed" >&2; exit 2; }
  export PYTHONPATH="$PYTHONPATH:$site"
fi
if ! importable; then
  echo "gpu_resnet: the harness does not import with $PY (see $OUT/bench.log);" \
    "carry .whl/ made by benchmarks/gpu_wheels.sh" | tee -a "$OUT/bench.log" >&2
  exit 2
fi

# The GPU code path's tests (they skip where there is no GPU).
timeout 120 "$PY" -m pytest -q -p no:cacheprovider tests/test_workloads.py -k "gpu or torch" \
  >"$OUT/gpu_tests.txt" 2>&1
echo "gpu_resnet: GPU tests: $(tail -n 1 "$OUT/gpu_tests.txt")" >&2

exec "$PY" benchmarks/gpu_resnet.py
