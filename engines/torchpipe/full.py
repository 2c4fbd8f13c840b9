"""The full torchpipe wheel (PyPI ``torchpipe``, on torch): its C++ JPEG decoder.

``DecodeMat`` (OpenCV's decoder in C++, the seed's "c++ backend" for JPEG) ships in the full
wheel, whose core library is compiled against the installed torch on its first import
(minutes). ``scripts/bootstrap.sh all`` installs it and runs ``python -m
engines.torchpipe.full`` once, which compiles it and checks its pixels against cv2's; a
measured run never compiles: :func:`unavailable` says why it cannot run instead.
"""

from __future__ import annotations

import importlib.util
import os
from importlib.metadata import version
from pathlib import Path
from typing import Any

import numpy as np

from engines.torchpipe.core import make_pipe
from engines.workloads import create_workload
from engines.workloads.jpeg import JpegDecode

#: The system option naming this backend.
DECODE_MAT = "DecodeMat"
#: DecodeMat yields an OpenCV Mat, which Python cannot read: Mat2Tensor hands the pixels
#: back as a CPU tensor (``device: cpu``), BGR, height x width x 3.
_NODE = {"backend": "S[DecodeMat,Mat2Tensor]", "device": "cpu"}
INSTALL = "scripts/bootstrap.sh all"


def _compiled_core() -> bool:
    """Whether torchpipe's core library exists for the installed torch (wheel or cache)."""
    major, minor = version("torch").split(".")[:2]
    name = f"torchpipe_core-torch{major}{minor}-cpu-abiflag*.so"
    spec = importlib.util.find_spec("torchpipe")
    places = [Path(os.environ.get("OMNIBACK_CACHE_DIR", "~/.cache/omniback/")).expanduser()]
    if spec is not None and spec.submodule_search_locations:
        places += [Path(p) / "lib" for p in spec.submodule_search_locations]
    return any(any(place.glob(name)) for place in places)


def unavailable() -> str | None:
    """Why DecodeMat cannot run here now (``None``: it can), without importing torch."""
    for package in ("torch", "torchpipe"):
        if importlib.util.find_spec(package) is None:
            return f"the full torchpipe wheel is not installed (no {package}): {INSTALL}"
    if not _compiled_core():
        return f"torchpipe's core is not compiled for this torch yet (minutes, once): {INSTALL}"
    return None


class DecodeMatCall:
    """The jpeg workload with torchpipe's DecodeMat as its decoder: each call decodes the
    prepared JPEG in C++ and, as the workload's own ``compute``, replies with the request."""

    def __init__(self, serving: dict[str, Any], workload: dict[str, Any]) -> None:
        reason = unavailable()
        if reason:
            raise RuntimeError(f"torchpipe {DECODE_MAT}: {reason}")
        work = create_workload(workload["name"], workload.get("options", {}))
        if not isinstance(work, JpegDecode):
            raise RuntimeError(f"torchpipe {DECODE_MAT}: decodes JPEG, not {workload['name']}")
        import torchpipe  # noqa: F401 - registers DecodeMat; its core is compiled (checked)

        work.setup()
        self.workload = work
        self._jpeg = work.jpeg
        self._pipe = make_pipe(
            _NODE["backend"],
            serving["instances"],
            serving["batching_timeout_ms"],
            serving["max_batch"],
            device=_NODE["device"],
        )

    def decode(self) -> np.ndarray:
        """The prepared JPEG's pixels, decoded by DecodeMat."""
        io: dict[str, Any] = {"data": self._jpeg}
        self._pipe(io)
        if "result" not in io:
            raise RuntimeError(f"torchpipe {DECODE_MAT}: no result (the backend failed)")
        return np.from_dlpack(io["result"])

    def __call__(self, request: np.ndarray) -> np.ndarray:
        self.workload.check_decoded(self.decode())
        return request


def prepare() -> None:
    """Compile torchpipe's core now (its first import), then check DecodeMat's pixels."""
    import torchpipe  # noqa: F401 - the first import compiles the core

    serving = {"instances": 1, "batching_timeout_ms": 0, "max_batch": 1}
    call = DecodeMatCall(serving, {"name": "jpeg", "options": {}})
    if not np.array_equal(call.decode(), call.workload.decode()):
        raise SystemExit(f"torchpipe {DECODE_MAT}: pixels differ from cv2.imdecode's")
    print(f"torchpipe {DECODE_MAT}: ready (pixels equal to cv2.imdecode's)")


if __name__ == "__main__":
    prepare()
