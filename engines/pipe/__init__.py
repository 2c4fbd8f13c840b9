"""pipe: a torchpipe-like engine called locally and thread-safely, in-process.

    from engines.pipe import Pipe, register_backend
    pipe = Pipe({"backend": "MyModel", "instance_num": 2, "batching_timeout": 5, "max": 4})
    reply = pipe(request)      # blocks; thread-safe; re-raises the backend's error
    pipe.close()               # drains in-flight work

Requests from many caller threads are queued, formed into batches of up to ``max`` (waiting
at most ``batching_timeout`` ms for a fuller one) and run by ``instance_num`` backend
instances, each on its own worker.
"""

from engines.pipe.backends import Backend, register_backend
from engines.pipe.config import NodeConfig, PipeConfigError
from engines.pipe.engine import Pipe

__all__ = ["Backend", "NodeConfig", "Pipe", "PipeConfigError", "register_backend"]
