// pipebench's RPC interface: one tensor in, one tensor out, or named tensors in and out.
// Regenerate the Python code with scripts/gen_thrift.sh (Debian's thrift-compiler).

namespace py pipebench_rpc

struct Tensor {
  1: string dtype,       // numpy dtype name, e.g. "uint8"
  2: list<i64> shape,
  3: binary data,        // C-order bytes
  4: optional string name, // the model's input or output name (infer_named only)
}

exception InferenceError {
  1: string message,
}

service Inference {
  // Run the served workload on one request.
  Tensor infer(1: Tensor request) throws (1: InferenceError error),
  // Run it on one request of named tensors (a multi-input model): named tensors back.
  list<Tensor> infer_named(1: list<Tensor> inputs) throws (1: InferenceError error),
  // Cheap liveness check used while waiting for the server to come up.
  bool ping(),
  // Server-side counters as a JSON object (the engine's formed batch sizes...).
  string stats(),
}
