"""Triton Python-backend model that runs a pipebench workload.

The same :mod:`engines.workloads` code the other systems run. ``config.pbtxt`` (written
by :mod:`engines.triton.repository` from the scenario) carries the workload as JSON, the
project root (Triton's embedded Python ignores ``PYTHONPATH``) and whether to compute at
all (``compute: none`` is the ``triton-rpc`` system, the RPC ceiling).
"""

import json
import sys

import numpy as np
import triton_python_backend_utils as pb_utils


class TritonPythonModel:
    def initialize(self, args):
        config = json.loads(args["model_config"])
        params = {key: value["string_value"] for key, value in config["parameters"].items()}
        root = params.get("pipebench_root")
        if root and root not in sys.path:
            sys.path.insert(0, root)
        from engines.workloads import create_workload

        spec = json.loads(params["workload"])
        self.workload = create_workload(spec["name"], spec.get("options", {}))
        self.compute = params.get("compute", "workload") == "workload"
        if self.compute:
            self.workload.setup()

    def execute(self, requests):
        inputs = [pb_utils.get_input_tensor_by_name(r, "INPUT").as_numpy() for r in requests]
        items = [row for batch in inputs for row in batch]
        try:
            if self.compute:
                replies = self.workload.compute(items)
            else:
                replies = [self.workload.reply_without_compute(item) for item in items]
        except Exception as exc:
            error = pb_utils.TritonError(f"{type(exc).__name__}: {exc}")
            return [pb_utils.InferenceResponse(output_tensors=[], error=error) for _ in requests]
        responses, start = [], 0
        for batch in inputs:
            rows = np.stack(replies[start : start + len(batch)])
            start += len(batch)
            responses.append(pb_utils.InferenceResponse([pb_utils.Tensor("OUTPUT", rows)]))
        return responses
