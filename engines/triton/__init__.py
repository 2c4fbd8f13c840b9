"""Triton Inference Server: launched for real (``tritonserver``), driven by ``tritonclient``."""
