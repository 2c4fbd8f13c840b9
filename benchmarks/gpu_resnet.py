"""The resnet scenarios on a GPU machine: CUDA (torch) and TensorRT, whichever are there.

Run by ``benchmarks/gpu_resnet.sh`` as one short, prepared device call. A GPU machine may
have no network and only some of our packages, so this first says what the machine has,
then derives GPU variants of ``scenarios/resnet*.yaml``: the workload's ``runtime`` and
``device`` replaced, the load windows shortened, and only the systems that can run there
kept (no tritonserver: Triton's columns are left out, and for resnet18's local-call table
pipe+thrift stands in as the RPC path). Each runtime's variants run through ``bench run``
under a deadline; the tables go to ``OUT/gpu_resnet.md``, all records to
``OUT/results.json``, the machine's description to ``OUT/environment.json``.

``GPU_RESNET_RUNTIMES`` (e.g. ``torch:cuda,onnxruntime:cpu``) overrides which runtimes
run; ``onnxruntime:cpu`` lets the whole path be tried on a machine without a GPU.
"""

from __future__ import annotations

import json
import os
import platform
import signal
import subprocess
import sys
import tempfile
import time
from importlib.util import find_spec
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
SCENARIOS = sorted((ROOT / "scenarios").glob("resnet*.yaml"))
DEFAULT_RUNTIMES = ("tensorrt:cuda", "torch:cuda", "onnxruntime:cuda")
#: Fits a 15-minute device lease with its start-up and a rerun.
BUDGET_S = float(os.environ.get("GPU_RESNET_BUDGET_S", "420"))
WINDOWS = {"warmup_s": 1.0, "duration_s": 4.0}


def _version(module: str) -> str | None:
    if find_spec(module) is None:
        return None
    try:
        return str(__import__(module).__version__)
    except Exception as exc:  # a broken install is worth reporting, not fatal
        return f"broken: {type(exc).__name__}: {exc}"


def probe() -> dict[str, Any]:
    """What this machine offers: Python, packages, the GPU, the runtimes' back ends."""
    env: dict[str, Any] = {
        "python": platform.python_version(),
        "machine": platform.machine(),
        "cpus": os.cpu_count(),
        **{name: _version(name) for name in ("numpy", "torch", "tensorrt", "onnxruntime")},
        "thrift": find_spec("thrift") is not None,
        "pydantic": find_spec("pydantic") is not None,
        "tritonserver": find_spec("pytriton") is not None,
        "gpu": None,
        "onnxruntime_providers": [],
    }
    if env["torch"] and not env["torch"].startswith("broken"):
        import torch

        if torch.cuda.is_available():
            env["gpu"] = torch.cuda.get_device_name()
            env["cuda"] = torch.version.cuda
            env["tf32_convolutions"] = torch.backends.cudnn.allow_tf32
    if env["onnxruntime"] and not env["onnxruntime"].startswith("broken"):
        import onnxruntime

        env["onnxruntime_providers"] = onnxruntime.get_available_providers()
    return env


def runtime_skip_reason(runtime: str, device: str, env: dict[str, Any]) -> str | None:
    from engines.workloads.runtimes import runtime_problem

    if problem := runtime_problem(runtime, device):  # type: ignore[arg-type]
        return problem
    if device == "cuda" and not env["gpu"]:
        return "no CUDA GPU visible to torch"
    providers = env["onnxruntime_providers"]
    if runtime == "onnxruntime" and device == "cuda" and "CUDAExecutionProvider" not in providers:
        return f"onnxruntime {env['onnxruntime']} has no CUDAExecutionProvider ({providers})"
    return None


def systems_here(env: dict[str, Any]) -> set[str]:
    systems = {"pipe"}
    if env["thrift"]:
        systems |= {"pipe+thrift", "thrift"}
    if env["tritonserver"]:
        systems |= {"triton", "triton-rpc"}
    return systems


def variant(path: Path, runtime: str, device: str, available: set[str]) -> dict[str, Any]:
    """``path``'s scenario on ``runtime``/``device`` with the systems that exist here."""
    from harness.scenario import Load

    data = yaml.safe_load(path.read_text())
    data["name"] = f"{data['name']}-{runtime}-{device}"
    data["workload"].update(runtime=runtime, device=device)
    data["load"].update(WINDOWS)
    if "repeats" in Load.model_fields:
        data["load"]["repeats"] = 1
    specs = [{"name": s} if isinstance(s, str) else s for s in data["systems"]]
    kept = [spec for spec in specs if spec["name"] in available]
    only_local = not any(spec["name"] != "pipe" for spec in kept)
    if len(kept) < len(specs) and only_local and "pipe+thrift" in available:
        # Keep a local-call vs RPC comparison where Triton is missing.
        kept.append({"name": "pipe+thrift", "label": "pipe+thrift (rpc stand-in)"})
    data["systems"] = kept
    return data


def run_bench(files: list[Path], results: Path, deadline: float, log: Any) -> tuple[int, str]:
    """``bench run`` in a child process, stopped (servers and all) at the deadline."""
    argv = [sys.executable, "-m", "harness.cli", "run", *map(str, files)]
    argv += ["--results-dir", str(results)]
    child = subprocess.Popen(argv, cwd=ROOT, stdout=subprocess.PIPE, stderr=log, text=True)
    try:
        stdout, _ = child.communicate(timeout=max(deadline - time.monotonic(), 1))
    except subprocess.TimeoutExpired:
        child.send_signal(signal.SIGTERM)  # the harness stops its servers on SIGTERM
        stdout, _ = child.communicate()
        stdout += "\n(stopped at the deadline: partial results)\n"
    return child.returncode, stdout


def main(out: Path) -> int:
    out.mkdir(parents=True, exist_ok=True)
    deadline = time.monotonic() + BUDGET_S
    env = probe()
    (out / "environment.json").write_text(json.dumps(env, indent=2) + "\n")
    wanted = os.environ.get("GPU_RESNET_RUNTIMES", ",".join(DEFAULT_RUNTIMES)).split(",")
    available = systems_here(env)
    report = [
        "# resnet scenarios on a GPU machine",
        "",
        f"GPU: {env['gpu'] or 'none'} · CUDA {env.get('cuda')} · torch {env['torch']} · "
        f"TensorRT {env['tensorrt'] or 'not installed'} · onnxruntime {env['onnxruntime']} "
        f"{env['onnxruntime_providers']} · Python {env['python']} · {env['cpus']} CPUs",
        f"Systems that can run here: {', '.join(sorted(available))}"
        + ("" if env["tritonserver"] else " (no tritonserver on this machine)"),
        "",
    ]
    records: list[dict[str, Any]] = []
    failed = False
    work = Path(tempfile.mkdtemp(prefix="pipebench-gpu-"))
    with (out / "bench.log").open("a") as log:
        for item in wanted:
            runtime, _, device = item.strip().partition(":")
            reason = runtime_skip_reason(runtime, device or "cuda", env)
            if reason:
                report.append(f"- {runtime} on {device}: skipped: {reason}")
                continue
            if time.monotonic() > deadline - 30:
                report.append(f"- {runtime} on {device}: skipped: out of time")
                continue
            files = []
            for path in SCENARIOS:
                data = variant(path, runtime, device, available)
                target = work / f"{data['name']}.yaml"
                target.write_text(yaml.safe_dump(data, sort_keys=False))
                files.append(target)
            results = work / f"results-{runtime}-{device}"
            print(f"gpu_resnet: running {runtime} on {device}", file=sys.stderr, flush=True)
            code, tables = run_bench(files, results, deadline, log)
            failed |= code != 0
            report += ["", f"## {runtime} on {device} (bench exit code {code})", "", tables]
            for result in sorted(results.glob("*.json")):
                records.append(json.loads(result.read_text()))
    (out / "gpu_resnet.md").write_text("\n".join(report) + "\n")
    (out / "results.json").write_text(json.dumps(records, indent=1) + "\n")
    print((out / "gpu_resnet.md").read_text())
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(Path(os.environ.get("OUT") or ROOT / "results" / "gpu")))
