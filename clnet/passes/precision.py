"""Mixed precision: which float tensors are stored as fp16 and which stay fp32.

``assign_precision`` is a Graph -> Graph pass.  Every float tensor computed at
run time gets a storage type, half unless a rule says otherwise:

* inputs and outputs of numerically sensitive ops (softmax, normalisations,
  reductions, powers that build variances, quantization) stay fp32;
* a tensor whose calibrated max |value| is beyond ``SAFE_BOUND`` (far enough
  below the fp16 maximum 65504 to leave headroom for inputs not seen during
  calibration), or so small that fp16 would flush it, stays fp32;
* graph outputs stay fp32 (they are what the user compares);
* tensors that share memory or are bit-copied (views, Transpose, Concat ...)
  share one storage type.

Each kernel launch must see one storage type, so where a node's storage
differs from an input's, a ``ConvertStorage`` node (domain ``clnet``) is
inserted.  ``calibrate`` runs the model once in fp32 on the device and
records the range of every tensor; it is the only part that needs a device
(through the planner the session hands it).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import numpy as np

from ..graph import Graph, Node, Value

SAFE_BOUND = 4096.0          # 16x headroom below the fp16 maximum
FP16_MAX = 65504.0
FP16_TINY = 2.0 ** -14       # smallest normal fp16
CONVERT_OP = "ConvertStorage"
CONVERT_DOMAIN = "clnet"

SENSITIVE = {
    "Softmax": "softmax", "LogSoftmax": "softmax",
    "LayerNormalization": "normalisation", "InstanceNormalization": "normalisation",
    "GroupNormalization": "normalisation", "RMSNormalization": "normalisation",
    "SimplifiedLayerNormalization": "normalisation", "LpNormalization": "normalisation",
    "ReduceSum": "reduction", "ReduceMean": "reduction", "ReduceSumSquare": "reduction",
    "ReduceL1": "reduction", "ReduceL2": "reduction", "ReduceLogSum": "reduction",
    "ReduceLogSumExp": "reduction", "ReduceProd": "reduction", "CumSum": "reduction",
    "Pow": "power (variance)",
    "QuantizeLinear": "quantization", "DequantizeLinear": "quantization",
    "DynamicQuantizeLinear": "quantization", "QLinearConv": "quantization",
    "QLinearMatMul": "quantization",
    # subgraph bodies are lowered without the pass: they see fp32 tensors
    "If": "control flow", "Loop": "control flow", "Scan": "control flow",
}
# outputs share memory with (views) or are bit copies of their float inputs
TIED = {"Reshape", "Flatten", "Squeeze", "Unsqueeze", "Identity", "Dropout", "Transpose",
        "Slice", "Concat", "Expand", "Split", "Tile", "Gather", "DepthToSpace",
        "SpaceToDepth", "MovementChain"}
NO_DATA = {"Shape", "Size"}
# a sensitive input made by one of these from one run-time tensor (a scaled
# score, a shifted logit) is kept fp32 back to where it was computed
PASS_BACK = {"Mul", "Add", "Sub", "Div", "Neg", "Identity", "Reshape", "Transpose"}


@dataclass
class TensorPrecision:
    """One row of the explanation: a tensor, its range and storage, and why."""
    name: str
    max_abs: Optional[float]
    half: bool
    why: str


@dataclass
class ValueStats:
    dtype: np.dtype
    max_abs: float
    finite: bool = True


def _is_float(dtype) -> bool:
    return dtype is not None and np.dtype(dtype).kind == "f"


class _Groups:
    """Union-find over values that must share one storage type."""

    def __init__(self):
        self.parent: dict = {}

    def find(self, v):
        self.parent.setdefault(v, v)
        while self.parent[v] is not v:
            self.parent[v] = self.parent[self.parent[v]]
            v = self.parent[v]
        return v

    def union(self, a, b) -> None:
        ra, rb = self.find(a), self.find(b)
        if ra is not rb:
            self.parent[rb] = ra


def _float_values(graph: Graph, stats: dict) -> list:
    """Run-time float tensors in graph order (not those known at load time,
    such as Constant outputs, which are folded when a plan is made)."""
    from ..frontend.onnx import host_computable

    known = host_computable(graph)

    def is_float(v: Value) -> bool:
        if v is None or v.is_const or not v.name or v in known:
            return False
        if v.name in stats:
            return _is_float(stats[v.name].dtype)
        return _is_float(v.dtype)

    seen, order = set(), []
    for v in list(graph.inputs) + [o for n in graph.nodes for o in n.outputs]:
        if is_float(v) and v not in seen:
            seen.add(v)
            order.append(v)
    return order


def _forced_fp32(graph: Graph, floats: set, stats: dict, bound: float) -> dict:
    """value -> reason it must stay fp32, from the rules and the calibration."""
    forced: dict = {}
    _op_rules(graph, floats, forced)
    _range_rules(graph, floats, stats, bound, forced)
    for v in graph.outputs:
        if v in floats:
            forced.setdefault(v, "graph output")
    return forced


def _op_rules(graph: Graph, floats: set, forced: dict) -> None:
    """Sensitive ops keep their tensors fp32; so do huge constants' readers."""
    producers = graph.producers()
    for node in graph.nodes:
        # a fused chain is as sensitive as the ops it holds (a Softmax at its end)
        kind = SENSITIVE.get(node.op) or next(
            (SENSITIVE[m.op] for m in node.body or () if m.op in SENSITIVE), None)
        if kind:
            for v in list(node.inputs) + list(node.outputs):
                if v in floats:
                    forced.setdefault(v, f"{kind} ({node.op}) input/output")
            for v in node.inputs:
                if v in floats:
                    _force_back(v, producers, floats, forced, f"feeds a {kind} ({node.op})")
        big = [v for v in node.inputs if v is not None and v.is_const
               and _is_float(v.dtype) and v.data.size
               and float(np.max(np.abs(v.data))) > FP16_MAX]
        for v in node.outputs if big else ():
            if v in floats:
                forced.setdefault(v, f"constant {big[0].name!r} exceeds the fp16 range")


def _range_rules(graph: Graph, floats: set, stats: dict, bound: float, forced: dict) -> None:
    """Calibrated ranges: too large or too small for fp16, and the readers of
    too-large tensors (a half copy of their input would round or overflow)."""
    for v in floats:
        st = stats.get(v.name)
        if st is None or v in forced:
            continue
        if st.max_abs > bound:
            forced[v] = f"calibrated max |x| {st.max_abs:.4g} > safe fp16 bound {bound:g}"
        elif 0.0 < st.max_abs < FP16_TINY:
            forced[v] = f"calibrated max |x| {st.max_abs:.3g} is below the fp16 normal range"
    big = {v for v in floats if v.name in stats and stats[v.name].max_abs > bound}
    for node in graph.nodes:
        wide = next((v for v in node.inputs if v in big), None)
        for v in node.outputs if wide is not None else ():
            if v in floats:
                forced.setdefault(v, f"reads {wide.name!r} beyond the safe fp16 bound")


def _force_back(value, producers: dict, floats: set, forced: dict, reason: str) -> None:
    for _ in range(4):
        node = producers.get(value)
        if node is None or node.op not in PASS_BACK:
            return
        runtime = [v for v in node.inputs if v in floats]
        if len(runtime) != 1:
            return
        value = runtime[0]
        forced.setdefault(value, f"{reason}, through {node.op}")


def _tie(graph: Graph, floats: set) -> _Groups:
    groups = _Groups()
    for v in floats:
        groups.find(v)
    for node in graph.nodes:
        outs = [v for v in node.outputs if v in floats]
        for v in outs[1:]:
            groups.union(outs[0], v)
        if node.op in TIED and outs:
            for v in node.inputs:
                if v in floats:
                    groups.union(outs[0], v)
    return groups


def assign_precision(graph: Graph, stats: Optional[dict] = None,
                     bound: float = SAFE_BOUND) -> tuple:
    """Choose fp16/fp32 storage per tensor and insert conversions.

    stats: value name -> ValueStats from ``calibrate`` (optional).
    Returns (graph, storage, report): storage maps value name -> stored as
    half; report is a list of TensorPrecision in graph order.
    """
    stats = stats or {}
    order = _float_values(graph, stats)
    floats = set(order)
    forced = _forced_fp32(graph, floats, stats, bound)
    groups = _tie(graph, floats)
    group_reason: dict = {}
    for v in order:
        if v in forced:
            group_reason.setdefault(groups.find(v), (v, forced[v]))
    storage, report = {}, []
    for v in order:
        hit = group_reason.get(groups.find(v))
        half = hit is None
        if half:
            why = "fp16-safe" if v.name in stats else "fp16 (no rule applies)"
        elif hit[0] is v:
            why = hit[1]
        else:
            why = f"shares memory with {hit[0].name!r}: {hit[1]}"
        storage[v.name] = half
        st = stats.get(v.name)
        report.append(TensorPrecision(v.name, st.max_abs if st else None, half, why))
    _inputs_follow_consumers(graph, storage, report)
    _insert_conversions(graph, storage, report)
    return graph, storage, report


def _inputs_follow_consumers(graph: Graph, storage: dict, report: list) -> None:
    """A half graph input read by a fp32 node is better uploaded as fp32."""
    users = graph.consumers()
    rows = {r.name: r for r in report}
    for value in graph.inputs:
        if not storage.get(value.name):
            continue
        readers = users.get(value, ())
        if any(n.op in TIED for n in readers):
            continue  # tied to a view or copy: keeps its group's storage
        wants = [_node_storage(n, storage) for n in readers]
        if any(w is False for w in wants) and value.name in rows:
            storage[value.name] = False
            rows[value.name].half = False
            rows[value.name].why = "graph input read by a node stored as fp32"


def _node_storage(node: Node, storage: dict) -> Optional[bool]:
    for v in list(node.outputs) + list(node.inputs):
        if v is not None and not v.is_const and v.name in storage:
            return storage[v.name]
    return None


def _insert_conversions(graph: Graph, storage: dict, report: list) -> None:
    made: dict = {}
    nodes = []
    for node in graph.nodes:
        want = _node_storage(node, storage)
        if want is not None and node.op not in NO_DATA:
            for i, v in enumerate(node.inputs):
                if v is None or v.name not in storage or storage[v.name] == want:
                    continue
                key = (v, want)
                if key not in made:
                    made[key] = _convert_node(graph, v, want, storage, report)
                    nodes.append(made[key])
                node.map_inputs({v: made[key].outputs[0]})
        nodes.append(node)
    graph.nodes = nodes


def _convert_node(graph: Graph, value: Value, half: bool, storage: dict, report: list) -> Node:
    target = "half" if half else "float"
    out = Value(f"{value.name}/as_{target}", value.shape, value.dtype)
    graph.values[out.name] = out
    storage[out.name] = half
    report.append(TensorPrecision(out.name, None, half,
                                  f"copy of {value.name!r} for a consumer stored as {target}"))
    return Node(CONVERT_OP, [value], [out], {"to": target}, f"{value.name}/convert_{target}",
                CONVERT_DOMAIN)


def calibrate(graph: Graph, feeds_list: list, build, bind=None) -> dict:
    """Run `graph` in fp32 on each feed dict; value name -> ValueStats.

    Every named tensor becomes an output of a throw-away plan so that its
    range can be read back (load-time only).  build(graph) makes that plan:
    the session's fp32 planner on its device, with its own weight cache.
    bind(graph copy, feeds) gives the copy's inputs their shapes (and values
    for inputs that decide shapes); by default, the feeds' shapes.
    """
    stats: dict = {}
    for feeds in feeds_list:
        g = graph.copy()
        if bind is not None:
            bind(g, feeds)
        for value in g.inputs:
            value.shape = tuple(np.asarray(feeds[value.name]).shape)
        seen = set(g.outputs)
        extra = [v for n in g.nodes for v in n.outputs
                 if v.name and v not in seen and not seen.add(v)]
        g.outputs = list(g.outputs) + extra
        plan = build(g)
        arrays = plan.run([np.asarray(feeds[v.name]) for v in g.inputs])
        named = list(zip(g.outputs, arrays)) + [(v, np.asarray(feeds[v.name])) for v in g.inputs]
        for value, arr in named:
            arr = np.asarray(arr)
            if arr.dtype.kind != "f":
                stats.setdefault(value.name, ValueStats(arr.dtype, 0.0))
                continue
            finite = np.isfinite(arr)
            peak = float(np.max(np.abs(arr[finite]))) if finite.any() else 0.0
            old = stats.get(value.name)
            if old is not None:
                peak = max(peak, old.max_abs)
                finite = finite.all() and old.finite
            stats[value.name] = ValueStats(np.dtype(np.float32), peak, bool(np.all(finite)))
    return stats


def format_report(report: list) -> str:
    """The --explain-precision table."""
    rows = [("tensor", "max |x|", "storage", "why")]
    for r in report:
        rows.append((r.name, "-" if r.max_abs is None else f"{r.max_abs:.4g}",
                     "fp16" if r.half else "fp32", r.why))
    width = [min(max(len(row[i]) for row in rows), 48) for i in range(3)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(row[:3], width)) + "  " + row[3]
             for row in rows]
    halves = sum(r.half for r in report)
    lines.append(f"{halves} of {len(report)} float tensors stored as fp16")
    return "\n".join(lines)


def random_feeds(graph: Graph, seed: int = 0) -> dict:
    """One seeded random feed (symbolic dims as 1) for calibration."""
    rng = np.random.default_rng(seed)
    feeds = {}
    for value in graph.inputs:
        shape = tuple(d if isinstance(d, int) else 1 for d in (value.shape or ()))
        dtype = np.dtype(value.dtype or np.float32)
        if dtype.kind == "f":
            feeds[value.name] = rng.standard_normal(shape).astype(dtype)
        elif dtype.kind == "b":
            feeds[value.name] = rng.random(shape) < 0.5
        else:
            feeds[value.name] = rng.integers(0, 10, size=shape).astype(dtype)
    return feeds
