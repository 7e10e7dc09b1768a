"""The operator registry: one entry per ONNX op.

An entry is a lowering function ``fn(ctx, node)`` that, given concrete input
shapes (and constant data where known), declares the output shapes (its shape
rule) and emits kernel launches, aliases or constants through ``ctx``.  The
reference for every op is ``onnx.reference`` (used to fold constant nodes at
load time and by the tests).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Optional


@dataclass(frozen=True)
class OpDef:
    name: str
    fn: Callable
    since: int = 1          # first opset this lowering serves
    domain: str = ""


_REGISTRY: dict = {}


def op(*names: str, since: int = 1, domain: str = "") -> Callable:
    """Register a lowering for one or more ONNX op names."""
    def wrap(fn: Callable) -> Callable:
        for name in names:
            entries = _REGISTRY.setdefault((domain, name), [])
            entries.append(OpDef(name, fn, since, domain))
            entries.sort(key=lambda e: e.since)
        return fn
    return wrap


def lookup(name: str, opset: int, domain: str = "") -> Optional[OpDef]:
    """The lowering for op `name` at this opset (the newest not after it)."""
    if domain == "ai.onnx":
        domain = ""
    best = None
    for entry in _REGISTRY.get((domain, name), ()):
        if entry.since <= opset:
            best = entry
    return best


def supported_ops() -> list:
    return sorted(name for (domain, name) in _REGISTRY if domain == "")
