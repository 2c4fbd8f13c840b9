"""Triton clients for the load generator: official ``tritonclient``, HTTP or gRPC."""

from __future__ import annotations

from typing import Any

import numpy as np


class TritonClient:
    """One load worker's client; the prepared input is built once and reused."""

    def __init__(self, protocol: str, url: str, model: str, timeout_s: float) -> None:
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
        self._outputs = [api.InferRequestedOutput("OUTPUT")]
        self._request: np.ndarray | None = None
        self._inputs: list[Any] = []

    def _prepare(self, request: np.ndarray) -> None:
        batch = np.ascontiguousarray(request[None, ...])
        infer_input = self._api.InferInput("INPUT", list(batch.shape), _triton_dtype(batch))
        infer_input.set_data_from_numpy(batch)
        self._inputs, self._request = [infer_input], request

    def call(self, request: np.ndarray) -> np.ndarray:
        if request is not self._request:
            self._prepare(request)
        result = self._client.infer(
            self._model, self._inputs, outputs=self._outputs, **self._timeout
        )
        return result.as_numpy("OUTPUT")[0]

    def is_ready(self, model: str) -> bool:
        try:
            return bool(self._client.is_server_ready() and self._client.is_model_ready(model))
        except Exception:
            return False

    def model_statistics(self) -> dict[str, Any]:
        stats = self._client.get_inference_statistics(self._model)
        return stats if isinstance(stats, dict) else {}

    def close(self) -> None:
        self._client.close()


def _triton_dtype(array: np.ndarray) -> str:
    from tritonclient.utils import np_to_triton_dtype

    return np_to_triton_dtype(array.dtype)
