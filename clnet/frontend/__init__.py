"""Model file readers: each turns a file into a clnet Graph."""
from .onnx import load_model  # noqa: F401
