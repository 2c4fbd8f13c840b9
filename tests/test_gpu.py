"""GPU utilisation and memory per point through NVML: recorded only where NVML works.

This machine has no GPU (and no nvidia-ml-py), so the absent path runs for real; the
reading of NVML's answers is checked with a stand-in module shaped like ``pynvml``.
"""

from __future__ import annotations

import sys
from types import SimpleNamespace

import pytest

from harness import gpu
from harness.runner import RunOptions, run_scenario
from harness.scenario import load_scenario
from harness.storage import ResultStore
from tests.conftest import hello_scenario


class NVMLError(Exception):
    pass


def stand_in(utilisation: list[float], used: list[float], init_fails: bool = False):
    """A ``pynvml``-shaped module: its GPUs' utilisation (%) and memory used (bytes)."""

    def init() -> None:
        if init_fails:
            raise NVMLError("Driver Not Loaded")

    return SimpleNamespace(
        NVMLError=NVMLError,
        nvmlInit=init,
        nvmlDeviceGetCount=lambda: len(utilisation),
        nvmlDeviceGetHandleByIndex=lambda index: index,
        nvmlDeviceGetUtilizationRates=lambda h: SimpleNamespace(gpu=utilisation[h], memory=0),
        nvmlDeviceGetMemoryInfo=lambda h: SimpleNamespace(used=used[h], total=2 * used[h]),
    )


@pytest.fixture
def fresh_nvml():
    gpu.nvml.cache_clear()
    yield
    gpu.nvml.cache_clear()


def test_no_nvml_module_or_no_driver_means_nothing_recorded(monkeypatch, fresh_nvml):
    monkeypatch.setitem(sys.modules, "pynvml", None)  # import fails: not installed
    assert gpu.nvml() is None and gpu.sample() is None
    gpu.nvml.cache_clear()
    monkeypatch.setitem(sys.modules, "pynvml", stand_in([50.0], [1e9], init_fails=True))
    assert gpu.nvml() is None and gpu.sample() is None
    assert gpu.summarize([None, None]) is None


def test_samples_are_read_and_summarised_per_point():
    first = gpu.sample(stand_in([30.0, 50.0], [1e9, 3e9]))
    assert first == {"utilization_pct": 40.0, "memory_used_bytes": 4e9}
    second = gpu.sample(stand_in([80.0, 100.0], [2e9, 3e9]))
    summary = gpu.summarize([first, None, second])
    assert summary == {
        "source": "nvml",
        "samples": 2,
        "utilization_pct": 65.0,
        "memory_used_bytes": 5e9,
    }


def test_a_point_without_a_gpu_records_no_gpu_block(write_scenario, tmp_path, fresh_nvml):
    if gpu.nvml() is not None:
        pytest.skip("this machine has a GPU that NVML sees")
    path = write_scenario(
        hello_scenario(systems=["pipe"], load={**hello_scenario()["load"], "clients": [1]})
    )
    options = RunOptions(warmup_s=0.05, duration_s=0.3, repeats=1, max_repeats=1)
    (record,) = run_scenario(load_scenario(path), path, ResultStore(tmp_path, "r"), options).records
    assert record.qps > 0 and "gpu" not in record.server_stats
