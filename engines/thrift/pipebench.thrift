// pipebench's RPC interface: one tensor in, one tensor out.
// Regenerate the Python code with scripts/gen_thrift.sh (Debian's thrift-compiler).

namespace py pipebench_rpc

struct Tensor {
  1: string dtype,       // numpy dtype name, e.g. "uint8"
  2: list<i64> shape,
  3: binary data,        // C-order bytes
}

exception InferenceError {
  1: string message,
}

service Inference {
  // Run the served workload on one request.
  Tensor infer(1: Tensor request) throws (1: InferenceError error),
  // Cheap liveness check used while waiting for the server to come up.
  bool ping(),
  // Server-side counters as a JSON object (the engine's formed batch sizes...).
  string stats(),
}
