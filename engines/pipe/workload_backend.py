"""The backend that runs a pipebench workload inside the pipe engine."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from engines.pipe.backends import Backend, register_backend
from engines.workloads import Workload, create_workload


class WorkloadBackend(Backend):
    """``params``: ``{"workload": name, "options": {...}}``; one workload per instance."""

    workload: Workload

    def init(self, params: dict[str, Any]) -> None:
        self.workload = create_workload(params["workload"], params.get("options", {}))
        self.workload.setup()
        #: The batch goes straight to the workload's compute: one Python call less per batch.
        self.forward = self.workload.compute  # type: ignore[method-assign]

    def forward(self, batch: Sequence[Any]) -> list[Any]:
        return self.workload.compute(batch)


BACKEND_NAME = "pipebench.workload"
register_backend(BACKEND_NAME, WorkloadBackend)
