"""The real torchpipe core (``omniback`` on PyPI), the reference pipe is measured against."""
