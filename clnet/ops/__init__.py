"""Operator lowerings.  Importing this package registers every op."""
from .registry import lookup, op, supported_ops  # noqa: F401
from . import elementwise, movement, gemm, pool, softmax  # noqa: F401,E402
