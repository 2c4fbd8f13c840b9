"""jpeg: decode a prepared 640x444 JPEG with OpenCV, the seed's pure-CPU backend.

As in the seed, RPC cost is kept out: the client sends "Hello, world!", the server decodes
its own JPEG (``cv2.imdecode(raw, cv2.IMREAD_COLOR)``, which releases the GIL) and sends
the greeting back. The JPEG is made at setup from a synthetic picture, nothing is read
from disk or downloaded, and every instance encodes the same bytes.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from pydantic import Field

from engines.workloads import Workload, WorkloadParams
from harness.errors import InputError

GREETING = "Hello, world!"


class JpegParams(WorkloadParams):
    width: int = Field(640, gt=0)
    height: int = Field(444, gt=0)
    quality: int = Field(90, ge=1, le=100)


def import_cv2() -> Any:
    try:
        import cv2
    except ImportError as exc:
        raise InputError(
            f"workload jpeg: cannot import cv2 ({exc}); "
            "pip install 'pipebench[all]' (opencv-python-headless<4.12 for numpy 1.x)"
        ) from None
    return cv2


def synthetic_picture(width: int, height: int) -> np.ndarray:
    """A photo-like BGR picture: smooth gradients, edges and some grain (seeded)."""
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    blue = 128 + 100 * np.sin(x / 37.0) * np.cos(y / 23.0)
    green = 255 * (x + y) / (width + height)
    red = np.where((x // 80 + y // 60) % 2 == 0, 200.0, 60.0)
    picture = np.stack([blue, green, red], axis=-1)
    picture += np.random.default_rng(0).normal(0, 12, picture.shape)
    return np.clip(picture, 0, 255).astype(np.uint8)


class JpegDecode(Workload):
    Params = JpegParams
    params: JpegParams
    _jpeg: np.ndarray

    def setup(self) -> None:
        cv2 = import_cv2()
        self._cv2 = cv2
        picture = synthetic_picture(self.params.width, self.params.height)
        ok, encoded = cv2.imencode(".jpg", picture, [cv2.IMWRITE_JPEG_QUALITY, self.params.quality])
        if not ok:
            raise RuntimeError("workload jpeg: OpenCV could not encode the prepared picture")
        self._jpeg = encoded

    @property
    def jpeg(self) -> bytes:
        """The prepared JPEG (after :meth:`setup`), for decoders other than OpenCV's."""
        return self._jpeg.tobytes()

    def decode(self) -> np.ndarray:
        """The prepared JPEG decoded by ``cv2.imdecode``: BGR, height x width x 3."""
        return self._cv2.imdecode(self._jpeg, self._cv2.IMREAD_COLOR)

    def check_decoded(self, image: np.ndarray | None) -> None:
        """Raise unless ``image`` has the prepared picture's shape (any decoder's output)."""
        expected = (self.params.height, self.params.width, 3)
        if image is None or image.shape != expected:
            raise RuntimeError(f"workload jpeg: decoded {getattr(image, 'shape', None)}")

    def make_request(self) -> np.ndarray:
        return np.frombuffer(GREETING.encode(), dtype=np.uint8).copy()

    def compute(self, batch: Sequence[np.ndarray]) -> list[np.ndarray]:
        for _ in batch:
            self.check_decoded(self.decode())
        return list(batch)
