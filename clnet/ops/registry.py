"""The operator registry: one entry per ONNX op.

An entry is a lowering function ``fn(ctx, node)`` that, given concrete input
shapes (and constant data where known), declares the output shapes (its shape
rule) and emits kernel launches, aliases or constants through ``ctx``.  The
reference for every op is ``onnx.reference`` (used to fold constant nodes at
load time and by the tests).

What the planner must know about an op before lowering it is declared here
too: ``shape_inputs`` (input positions whose values decide output shapes)
and ``host`` (data-dependent output shapes, computed on the host when the
plan is made).
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
    shape_inputs: tuple = ()   # inputs whose values decide output shapes
    host: bool = False         # output shapes depend on input values: run on the host


_REGISTRY: dict = {}


def op(*names: str, since: int = 1, domain: str = "", shape_inputs: tuple = (),
       host: bool = False) -> Callable:
    """Register a lowering for one or more ONNX op names."""
    def wrap(fn: Callable) -> Callable:
        for name in names:
            entries = _REGISTRY.setdefault((domain, name), [])
            entries.append(OpDef(name, fn, since, domain, tuple(shape_inputs), host))
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


def shape_inputs(name: str, domain: str = "") -> tuple:
    """Input positions of op `name` whose values decide its output shapes."""
    entries = _REGISTRY.get(("" if domain == "ai.onnx" else domain, name), ())
    return tuple(sorted({i for e in entries for i in e.shape_inputs}))


def host_ops() -> frozenset:
    """Ops whose output shapes depend on input values (run on the host)."""
    return frozenset(name for (domain, name), entries in _REGISTRY.items()
                     if not domain and any(e.host for e in entries))
