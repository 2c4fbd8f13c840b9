"""Triton's own view of a point: ``/metrics`` (Prometheus text) scraped around each turn.

Triton counts, per model, the requests it served and the microseconds they spent queued
and in each compute stage (input, infer, output; a request in a batch adds its batch's
time). Read before and after a turn, their difference divided by the requests gives the
server-side queue and compute time per request, whatever load generator was used. GPU
gauges (utilisation, memory) come with them when the server has a GPU.
"""

from __future__ import annotations

import urllib.error
import urllib.request

from prometheus_client.parser import text_string_to_metric_families

#: Triton's counter -> our name (the same names the pipe engine's counters get).
COUNTERS = {
    "nv_inference_request_success": "requests",
    "nv_inference_queue_duration_us": "queue_us",
    "nv_inference_compute_input_duration_us": "compute_input_us",
    "nv_inference_compute_infer_duration_us": "compute_infer_us",
    "nv_inference_compute_output_duration_us": "compute_output_us",
}
GAUGES = {
    "nv_gpu_utilization": "gpu_utilization",
    "nv_gpu_memory_used_bytes": "gpu_memory_used_bytes",
    "nv_gpu_memory_total_bytes": "gpu_memory_total_bytes",
}


def parse(text: str, model: str) -> dict[str, float]:
    """The model's counters and the GPU gauges out of a scrape: memory summed over the
    GPUs, utilisation their mean."""
    found: dict[str, float] = {}
    gpus = 0
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            name = sample.name.removesuffix("_total")
            if name in COUNTERS and sample.labels.get("model") == model:
                key = COUNTERS[name]
                found[key] = found.get(key, 0.0) + sample.value
            elif name in GAUGES:
                key = GAUGES[name]
                found[key] = found.get(key, 0.0) + sample.value
                gpus += key == "gpu_utilization"
    if gpus:
        found["gpu_utilization"] /= gpus
    return found


def scrape(url: str, model: str, timeout_s: float = 5.0) -> dict[str, float]:
    """``parse`` of one GET of ``url``; raises ``OSError`` if the endpoint does not answer."""
    with urllib.request.urlopen(url, timeout=timeout_s) as response:
        return parse(response.read().decode("utf-8", errors="replace"), model)


def server_times(metrics: dict[str, float]) -> dict[str, float] | None:
    """Cumulative counters in the harness's names (``compute_us``: the three stages)."""
    if "requests" not in metrics:
        return None
    times = {key: metrics[key] for key in COUNTERS.values() if key in metrics}
    stages = ("compute_input_us", "compute_infer_us", "compute_output_us")
    times["compute_us"] = sum(times.get(stage, 0.0) for stage in stages)
    return times


def try_scrape(url: str, model: str) -> dict[str, float] | str:
    """The scrape, or why there is none (the record says so instead of guessing)."""
    try:
        return scrape(url, model)
    except (OSError, urllib.error.URLError, ValueError) as exc:
        return f"no metrics at {url}: {exc}"
