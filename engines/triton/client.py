"""Triton clients for the load generator: official ``tritonclient``, HTTP or gRPC."""

from __future__ import annotations

from typing import Any

import numpy as np

from engines.workloads.tensors import TensorSpec


class TritonClient:
    """One load worker's client; the prepared input is built once and reused."""

    def __init__(
        self,
        protocol: str,
        url: str,
        model: str,
        timeout_s: float,
        scalar_outputs: tuple[str, ...] = (),
    ) -> None:
        if protocol == "grpc":
            import tritonclient.grpc as api

            self._client: Any = api.InferenceServerClient(url)
            self._timeout: dict[str, Any] = {"client_timeout": timeout_s}
        else:
            import tritonclient.http as api

            self._client = api.InferenceServerClient(
                url, connection_timeout=timeout_s, network_timeout=timeout_s
            )
            self._timeout = {}
        self._api = api
        self._model = model
        self._request: Any = None
        self._inputs: list[Any] = []
        #: ``OUTPUT`` for a single-tensor request; None (every output) for named tensors.
        self._outputs: list[Any] | None = None
        self._scalars = scalar_outputs

    def _prepare(self, request: np.ndarray | dict[str, np.ndarray]) -> None:
        named = request if isinstance(request, dict) else {"INPUT": request}
        self._inputs = []
        for name, array in named.items():
            batch = np.ascontiguousarray(with_batch(array))
            infer_input = self._api.InferInput(name, list(batch.shape), _triton_dtype(batch))
            infer_input.set_data_from_numpy(batch)
            self._inputs.append(infer_input)
        single = not isinstance(request, dict)
        self._outputs = [self._api.InferRequestedOutput("OUTPUT")] if single else None
        self._request = request

    def call(self, request: np.ndarray | dict[str, np.ndarray]) -> Any:
        """One request, batch of one: an array (``INPUT`` -> ``OUTPUT``), or named arrays
        (the model's inputs -> every output it returns)."""
        if request is not self._request:
            self._prepare(request)
        result = self._client.infer(
            self._model, self._inputs, outputs=self._outputs, **self._timeout
        )
        if self._outputs is not None:
            return result.as_numpy("OUTPUT")[0]
        rows = {name: result.as_numpy(name)[0] for name in _output_names(result.get_response())}
        return scalars_back(rows, self._scalars)

    def is_ready(self, model: str) -> bool:
        try:
            return bool(self._client.is_server_ready() and self._client.is_model_ready(model))
        except Exception:
            return False

    def model_statistics(self) -> dict[str, Any]:
        stats = self._client.get_inference_statistics(self._model, **self._as_json())
        return stats if isinstance(stats, dict) else {}

    def model_config(self) -> dict[str, Any]:
        """The model's configuration as the server reports it (``config.pbtxt`` as JSON)."""
        config = self._client.get_model_config(self._model, **self._as_json())
        return config.get("config", config) if isinstance(config, dict) else {}

    def model_metadata(self) -> dict[str, Any]:
        """The model's inputs and outputs as the server declares them (KServe v2 metadata)."""
        metadata = self._client.get_model_metadata(self._model, **self._as_json())
        return metadata if isinstance(metadata, dict) else {}

    def _as_json(self) -> dict[str, Any]:
        return {"as_json": True} if self._api.__name__.endswith("grpc") else {}

    def close(self) -> None:
        self._client.close()


def with_batch(array: np.ndarray) -> np.ndarray:
    """A request's tensor as a batch of one; a scalar travels as [1, 1] (Triton's dims [1])."""
    return array.reshape(1, 1) if array.ndim == 0 else array[None, ...]


def scalars_back(rows: dict[str, np.ndarray], scalars: tuple[str, ...]) -> dict[str, np.ndarray]:
    """Reply rows with the scalar outputs (sent by Triton as [1]) made scalars again."""
    for name in scalars:
        if name in rows and rows[name].shape == (1,):
            rows[name] = rows[name].reshape(())
    return rows


def _output_names(response: Any) -> list[str]:
    """The outputs a reply holds: a JSON dict over HTTP, a protobuf message over gRPC."""
    if isinstance(response, dict):
        return [output["name"] for output in response.get("outputs", [])]
    return [output.name for output in response.outputs]


def _triton_dtype(array: np.ndarray) -> str:
    from tritonclient.utils import np_to_triton_dtype

    return np_to_triton_dtype(array.dtype)


def deployed_serving(config: dict[str, Any]) -> dict[str, Any]:
    """A model configuration in the scenario's ``serving`` terms, plus what it came from.

    ``max_batch_size`` 0 (no batching) is ``max_batch`` 1; without ``dynamic_batching``
    no batch is waited for, and the timeout is ``None`` (not reported, not compared).
    """
    dynamic = config.get("dynamic_batching")
    delay_us = (
        float(dynamic.get("max_queue_delay_microseconds", 0)) if dynamic is not None else None
    )
    groups = config.get("instance_group") or [{"count": 1}]
    return {
        "instances": sum(int(group.get("count", 1)) for group in groups),
        "batching_timeout_ms": delay_us / 1000 if delay_us is not None else None,
        "max_batch": max(1, int(config.get("max_batch_size", 0))),
        "dynamic_batching": dynamic is not None,
        "instance_kinds": sorted({str(group.get("kind", "KIND_AUTO")) for group in groups}),
        "source": "the server's model configuration",
    }


def config_batches(config: dict[str, Any]) -> bool:
    """Whether the model batches: its tensors' first dimension is then the batch."""
    return int(config.get("max_batch_size", 0)) > 0


def declared_tensors(
    metadata: dict[str, Any], batched: bool
) -> tuple[list[TensorSpec], list[TensorSpec]]:
    """Model metadata's inputs and outputs as :class:`TensorSpec` lists (the batch
    dimension left out, -1 a symbolic dimension)."""
    from tritonclient.utils import triton_to_np_dtype

    def specs(tensors: list[dict[str, Any]]) -> list[TensorSpec]:
        found = []
        for tensor in tensors:
            dims = [int(d) for d in tensor.get("shape", [])][1 if batched else 0 :]
            shape = tuple(None if d < 0 else d for d in dims)
            dtype = np.dtype(triton_to_np_dtype(tensor["datatype"]))
            found.append(TensorSpec(tensor["name"], dtype, shape))
        return found

    return specs(metadata.get("inputs", [])), specs(metadata.get("outputs", []))
