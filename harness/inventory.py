"""``bench env``: which optional pieces this machine has, found without starting anything.

A scenario column that needs a missing piece fails at start with its own message; this
list answers the question before a run: what here can be measured at all?
"""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass
from importlib import import_module, metadata

from harness.errors import InputError


@dataclass(frozen=True)
class Item:
    name: str
    found: bool
    detail: str


def _version(*distributions: str) -> str | None:
    for distribution in distributions:
        try:
            return f"{distribution} {metadata.version(distribution)}"
        except metadata.PackageNotFoundError:
            continue
    return None


def _package(name: str, *distributions: str, why: str) -> Item:
    found = _version(*distributions)
    return Item(name, found is not None, found or f"not installed ({why})")


def _triton() -> Item:
    from engines.triton.repository import default_binary

    try:
        binary = default_binary()
    except InputError as exc:
        return Item("tritonserver", False, str(exc))
    return Item("tritonserver", binary.is_file(), f"{binary} ({_version('nvidia-pytriton')})")


def _perf_analyzer() -> Item:
    """perf_analyzer is unpacked from a wheel at install time; say whether that happened."""
    from engines.triton import perf_analyzer

    exe = perf_analyzer.cached_binary()
    if exe.is_file():
        return Item("perf_analyzer", True, f"{exe} ({perf_analyzer.VERSION})")
    on_path = shutil.which("perf_analyzer")
    if on_path:
        return Item("perf_analyzer", True, on_path)
    return Item(
        "perf_analyzer",
        False,
        f"not fetched yet: scripts/bootstrap.sh (or the first run with client: perf_analyzer) "
        f"fetches {perf_analyzer.WHEEL}",
    )


def _onnxruntime() -> Item:
    item = _package("onnxruntime", "onnxruntime", "onnxruntime-gpu", why="resnet workloads")
    if item.found:
        providers = import_module("onnxruntime").get_available_providers()
        return Item(item.name, True, f"{item.detail}; providers {', '.join(providers)}")
    return item


def _torch(gpu: bool) -> Item:
    """Whether torch sees CUDA is asked only where there is a GPU (importing torch is slow)."""
    item = _package("torch", "torch", why="resnet workloads with runtime: torch")
    if item.found and gpu:
        torch = import_module("torch")
        cuda = f"CUDA {torch.version.cuda}" if torch.cuda.is_available() else "CUDA not usable"
        return Item(item.name, True, f"{item.detail}; {cuda}")
    return item


def _gpu() -> Item:
    if shutil.which("nvidia-smi") is None:
        return Item("GPU", False, "no nvidia-smi: CPU only")
    try:
        done = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return Item("GPU", False, f"nvidia-smi failed: {exc}")
    gpus = [line for line in done.stdout.splitlines() if line.startswith("GPU")]
    return Item("GPU", bool(gpus), "; ".join(gpus) or done.stderr.strip() or "none listed")


def inventory() -> list[Item]:
    gpu = _gpu()
    return [
        _triton(),
        _perf_analyzer(),
        _package(
            "torchpipe core",
            "omniback",
            why="the torchpipe system: pip install 'pipebench[torchpipe]'",
        ),
        _package("torchpipe (full)", "torchpipe", why="C++ OpenCV backends such as DecodeMat"),
        _onnxruntime(),
        _torch(gpu.found),
        _package("opencv", "opencv-python-headless", "opencv-python", why="jpeg workload"),
        gpu,
        _package("TensorRT", "tensorrt", "tensorrt-cu12", why="GPU resnet runtime"),
    ]
