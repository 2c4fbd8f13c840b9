"""Where a model workload runs: onnxruntime, torch or TensorRT, on the CPU or a CUDA GPU.

Every runner takes float32 NCHW images and returns float32 logits, one row per image.
Heavy packages are imported only when a runner is made, and a missing one is a one-line
:class:`InputError` that says what to install. :func:`config_problem` rejects a runtime
that cannot work anywhere (TensorRT on the CPU) when the scenario is read;
:func:`unavailable` answers cheaply (no import) whether it can work on this machine (its
packages, a GPU), so the systems computing it are skipped with that reason instead.
"""

from __future__ import annotations

import fcntl
import functools
import glob
import hashlib
import os
import tempfile
from collections.abc import Callable
from importlib import import_module
from importlib.util import find_spec
from pathlib import Path
from types import ModuleType
from typing import Any, Literal, Protocol

import numpy as np

from engines.workloads import onnx_graph, resnet_arch
from engines.workloads.onnx_graph import INPUT_NAME, OUTPUT_NAME, build_onnx
from engines.workloads.resnet_arch import (
    BN_EPS,
    CLASSES,
    INPUT_SIZE,
    Weights,
    make_weights,
    resnet,
)
from harness.errors import InputError

RuntimeName = Literal["onnxruntime", "torch", "tensorrt"]
Device = Literal["cpu", "cuda"]

#: Python modules each runtime needs, and the pip install that brings them.
NEEDS: dict[str, tuple[str, ...]] = {
    "onnxruntime": ("onnx", "onnxruntime"),
    "torch": ("torch",),
    # TensorRT builds from the ONNX graph; torch holds the GPU buffers it reads and writes.
    "tensorrt": ("onnx", "tensorrt", "torch"),
}
INSTALL_HINT = {
    "onnxruntime": "pip install 'pipebench[all]' (onnx, onnxruntime)",
    "torch": "pip install torch==2.13.0 (CPU) or a CUDA build on a GPU machine",
    "tensorrt": "pip install tensorrt, with a CUDA build of torch, on a machine with an NVIDIA GPU",
}


class Runner(Protocol):
    def __call__(self, images: np.ndarray) -> np.ndarray: ...


#: How a skipped cell names each runtime.
TITLE: dict[str, str] = {"onnxruntime": "onnxruntime", "torch": "torch", "tensorrt": "TensorRT"}


def config_problem(runtime: RuntimeName, device: Device) -> str | None:
    """Why ``runtime`` on ``device`` is a mistake on any machine, or ``None``."""
    if runtime == "tensorrt" and device != "cuda":
        return "tensorrt runs on a GPU: set device: cuda"
    return None


def gpu_present() -> bool:
    """Whether the NVIDIA driver sees a GPU (its device files; no CUDA library loaded)."""
    return bool(glob.glob("/proc/driver/nvidia/gpus/*") or glob.glob("/dev/nvidia[0-9]*"))


def unavailable(runtime: RuntimeName, device: Device) -> str | None:
    """Why ``runtime`` on ``device`` cannot run on this machine (no GPU, missing
    packages), or ``None``; cheap: nothing is imported."""
    if device == "cuda" and not gpu_present():
        return f"needs a GPU ({TITLE[runtime]})"
    missing = [module for module in NEEDS[runtime] if find_spec(module) is None]
    if missing:
        return f"runtime {runtime} needs {', '.join(missing)}: {INSTALL_HINT[runtime]}"
    return None


def runtime_problem(runtime: RuntimeName, device: Device) -> str | None:
    """Why ``runtime`` on ``device`` cannot work here, for whatever reason, or ``None``."""
    return config_problem(runtime, device) or unavailable(runtime, device)


def require(module: str, runtime: RuntimeName) -> ModuleType:
    try:
        return import_module(module)
    except ImportError as exc:
        raise InputError(
            f"runtime {runtime}: cannot import {module} ({exc}); {INSTALL_HINT[runtime]}"
        ) from None


def cache_dir() -> Path:
    """Built models are cached here (``$PIPEBENCH_CACHE``, default a folder in /tmp)."""
    default = Path(tempfile.gettempdir()) / "pipebench-cache"
    return Path(os.environ.get("PIPEBENCH_CACHE", default))


def cached_file(name: str, make: Callable[[], bytes]) -> Path:
    """``cache_dir()/name``, made once under a file lock.

    Ten Triton instances start at once; the lock makes one of them build the file while
    the others wait and then read it, instead of ten builds fighting over two cores.
    """
    folder = cache_dir()
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    with (folder / f"{name}.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not path.exists():
            partial = path.with_suffix(f".{os.getpid()}.partial")
            partial.write_bytes(make())
            partial.replace(path)
    return path


@functools.cache
def graph_version() -> str:
    """A digest of the code that defines the network: a changed one never reads old files."""
    sources = (resnet_arch.__file__, onnx_graph.__file__)
    return hashlib.sha256(b"".join(Path(f).read_bytes() for f in sources)).hexdigest()[:12]


def onnx_model(depth: int, seed: int) -> Path:
    onnx = require("onnx", "onnxruntime")
    return cached_file(
        f"resnet{depth}-seed{seed}-{graph_version()}.onnx",
        lambda: build_onnx(onnx, depth, make_weights(depth, seed)),
    )


def cuda_problem(torch: Any) -> str | None:
    if not torch.cuda.is_available():
        return f"torch {torch.__version__} sees no CUDA GPU (is this a CPU build, or no driver?)"
    return None


class OnnxRuntimeRunner:
    def __init__(self, depth: int, seed: int, device: Device, threads: int) -> None:
        ort = require("onnxruntime", "onnxruntime")
        options = ort.SessionOptions()
        if threads:
            options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        # Spinning worker threads would steal the CPU from the other instances and servers.
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        provider = "CUDAExecutionProvider" if device == "cuda" else "CPUExecutionProvider"
        if provider not in ort.get_available_providers():
            raise InputError(
                f"runtime onnxruntime: no {provider} in this onnxruntime "
                "(a GPU needs the onnxruntime-gpu package)"
            )
        model = onnx_model(depth, seed)
        self._session = ort.InferenceSession(str(model), options, providers=[provider])

    def __call__(self, images: np.ndarray) -> np.ndarray:
        return self._session.run([OUTPUT_NAME], {INPUT_NAME: images})[0]


class TorchOps:
    """Runs the architecture eagerly with ``torch.nn.functional``."""

    def __init__(self, torch: Any, weights: Weights, device: str) -> None:
        self.F = torch.nn.functional
        self.w = {name: torch.from_numpy(array).to(device) for name, array in weights.items()}

    def conv(self, x: Any, name: str, cin: int, cout: int, kernel: int, stride: int) -> Any:
        return self.F.conv2d(x, self.w[f"{name}.weight"], stride=stride, padding=kernel // 2)

    def bn(self, x: Any, name: str, channels: int) -> Any:
        w = self.w
        return self.F.batch_norm(
            x,
            w[f"{name}.running_mean"],
            w[f"{name}.running_var"],
            w[f"{name}.weight"],
            w[f"{name}.bias"],
            training=False,
            eps=BN_EPS,
        )

    def relu(self, x: Any) -> Any:
        return self.F.relu(x)

    def add(self, a: Any, b: Any) -> Any:
        return a + b

    def maxpool(self, x: Any) -> Any:
        return self.F.max_pool2d(x, 3, 2, 1)

    def pool_fc(self, x: Any, name: str, cin: int, classes: int) -> Any:
        return self.F.linear(x.mean((2, 3)), self.w[f"{name}.weight"], self.w[f"{name}.bias"])


class TorchRunner:
    def __init__(self, depth: int, seed: int, device: Device, threads: int) -> None:
        torch = require("torch", "torch")
        if device == "cuda" and (problem := cuda_problem(torch)):
            raise InputError(f"runtime torch on cuda: {problem}")
        if threads:
            torch.set_num_threads(threads)
        self._torch, self._device, self._depth = torch, device, depth
        self._ops = TorchOps(torch, make_weights(depth, seed), device)

    def __call__(self, images: np.ndarray) -> np.ndarray:
        torch = self._torch
        with torch.inference_mode():
            x = torch.from_numpy(images).to(self._device)
            return resnet(self._ops, x, self._depth).cpu().numpy()


class TensorRTRunner:
    """A TensorRT engine built from the ONNX graph (cached per GPU), fed from torch buffers."""

    def __init__(self, depth: int, seed: int, max_batch: int) -> None:
        torch = require("torch", "tensorrt")
        if problem := cuda_problem(torch):
            raise InputError(f"runtime tensorrt: {problem}")
        trt = require("tensorrt", "tensorrt")
        self._torch, self._max_batch = torch, max_batch
        self._logger = trt.Logger(trt.Logger.WARNING)
        gpu = "".join(c if c.isalnum() else "-" for c in torch.cuda.get_device_name())
        onnx_path = onnx_model(depth, seed)
        engine_file = cached_file(
            f"{onnx_path.stem}-b{max_batch}-trt{trt.__version__}-{gpu}.engine",
            lambda: self._build(trt, onnx_path.read_bytes()),
        )
        engine = trt.Runtime(self._logger).deserialize_cuda_engine(engine_file.read_bytes())
        if engine is None:
            raise InputError(f"runtime tensorrt: cannot load the engine {engine_file}")
        self._engine = engine
        self._context = engine.create_execution_context()

    def _build(self, trt: Any, onnx_bytes: bytes) -> bytes:
        builder = trt.Builder(self._logger)
        # Explicit batch: required by TensorRT 8, the default (flag ignored) in TensorRT 10.
        flag = getattr(trt.NetworkDefinitionCreationFlag, "EXPLICIT_BATCH", None)
        network = builder.create_network(0 if flag is None else 1 << int(flag))
        parser = trt.OnnxParser(network, self._logger)
        if not parser.parse(onnx_bytes):
            errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
            raise InputError(f"runtime tensorrt: the ONNX graph did not parse: {errors}")
        config = builder.create_builder_config()
        profile = builder.create_optimization_profile()
        shape = (3, INPUT_SIZE, INPUT_SIZE)
        profile.set_shape(
            INPUT_NAME, (1, *shape), (self._max_batch, *shape), (self._max_batch, *shape)
        )
        config.add_optimization_profile(profile)
        serialized = builder.build_serialized_network(network, config)
        if serialized is None:
            raise InputError("runtime tensorrt: building the engine failed (see its log)")
        return bytes(serialized)

    def __call__(self, images: np.ndarray) -> np.ndarray:
        torch, context = self._torch, self._context
        replies = []
        stream = torch.cuda.current_stream()
        for start in range(0, len(images), self._max_batch):
            x = torch.from_numpy(images[start : start + self._max_batch]).cuda()
            y = torch.empty((len(x), CLASSES), dtype=torch.float32, device="cuda")
            context.set_input_shape(INPUT_NAME, tuple(x.shape))
            context.set_tensor_address(INPUT_NAME, x.data_ptr())
            context.set_tensor_address(OUTPUT_NAME, y.data_ptr())
            if not context.execute_async_v3(stream.cuda_stream):
                raise RuntimeError("tensorrt: execute_async_v3 failed")
            replies.append(y.cpu().numpy())  # .cpu() waits for the stream
        return np.concatenate(replies)


def make_runner(
    runtime: RuntimeName, device: Device, depth: int, seed: int, threads: int, max_batch: int
) -> Runner:
    if problem := runtime_problem(runtime, device):
        raise InputError(problem)
    if runtime == "onnxruntime":
        return OnnxRuntimeRunner(depth, seed, device, threads)
    if runtime == "torch":
        return TorchRunner(depth, seed, device, threads)
    return TensorRTRunner(depth, seed, max_batch)
