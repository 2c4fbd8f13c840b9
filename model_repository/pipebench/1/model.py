"""Triton Python-backend model that runs a pipebench workload.

The same :mod:`engines.workloads` code the other systems run. ``config.pbtxt`` (written
by :mod:`engines.triton.repository` from the scenario) carries the workload as JSON, the
project root (Triton's embedded Python ignores ``PYTHONPATH``) and whether to compute at
all (``compute: none`` is the ``triton-rpc`` system, the RPC ceiling). A workload of named
tensors (``named: true``, the ``onnx`` workload) gets each request row as a dict of the
config's inputs and returns a dict of its outputs; otherwise a row is ``INPUT``'s array.
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
        self.named = params.get("named") == "true"
        self.inputs = [tensor["name"] for tensor in config["input"]]
        self.outputs = [tensor["name"] for tensor in config["output"]]

    def execute(self, requests):
        inputs = [
            {name: pb_utils.get_input_tensor_by_name(r, name).as_numpy() for name in self.inputs}
            for r in requests
        ]
        sizes = [len(batch[self.inputs[0]]) for batch in inputs]
        items = [
            {name: batch[name][row] for name in self.inputs} if self.named else batch["INPUT"][row]
            for batch, size in zip(inputs, sizes, strict=True)
            for row in range(size)
        ]
        try:
            if self.compute:
                replies = self.workload.compute(items)
            else:
                replies = [self.workload.reply_without_compute(item) for item in items]
        except Exception as exc:
            error = pb_utils.TritonError(f"{type(exc).__name__}: {exc}")
            return [pb_utils.InferenceResponse(output_tensors=[], error=error) for _ in requests]
        responses, start = [], 0
        for size in sizes:
            rows = replies[start : start + size]
            start += size
            tensors = [
                pb_utils.Tensor(name, np.stack([row[name] if self.named else row for row in rows]))
                for name in self.outputs
            ]
            responses.append(pb_utils.InferenceResponse(tensors))
        return responses
