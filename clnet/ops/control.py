"""Control flow: If, Loop and Scan, inlined into the plan at load time.

A plan is a flat list of prebound launches, so subgraphs are inlined: a
fresh copy of the branch or body (clnet.subgraph.instantiate) is lowered
into the enclosing plan per branch or iteration, with its inputs bound to
the enclosing values.  What is known at load decides the shape of it:

* If with a constant condition inlines the taken branch only (a condition
  computed from small integer/bool graph inputs is one: the session keys its
  plans by their values); with a run-time condition both branches run and a Where selects each output
  (ONNX branches have no side effects), so their output shapes must agree.
* Loop needs its trip count at load (a constant, computed from shapes, or a
  graph input, which the session keys its plans by) or a condition that
  becomes a constant false.  A run-time condition is
  carried on the device: after it turns false every loop-carried value keeps
  its last value through a Where, with no host round trip.
* Scan iterates over the (load-time known) scan axis length.
"""
from __future__ import annotations

import numpy as np

from ..errors import UnsupportedOpError
from ..graph import Graph, Node, Value
from ..subgraph import const_value, instantiate, outer_bindings, real_inputs
from .registry import op

MAX_ITERATIONS = 4096    # unrolled iterations of one Loop/Scan before refusing


def _lower_nodes(ctx, node, nodes: list) -> None:
    """Lower helper nodes (folding what is constant), then make `node` current again."""
    ctx.lower_subgraph(Graph(nodes, [], [], ctx.opset))
    ctx.begin_node(node)


def _inline(ctx, node, sub, bindings: dict, prefix: str) -> list:
    """Lower a bound copy of a subgraph; returns its output Values."""
    graph = instantiate(sub, {**outer_bindings(node), **bindings}, f"{node.name}/{prefix}")
    ctx.lower_subgraph(graph)
    ctx.begin_node(node)
    return graph.outputs


def _forward(ctx, out: Value, src: Value) -> None:
    """`out` takes the value of `src` (a constant or a view of its memory)."""
    if not out.name:
        return
    if src.is_const:
        out.dtype = src.dtype
        ctx.set_const(out, src.data)
    else:
        ctx.alias(out, src, ctx.shape(src))


def _scalar(ctx, value: Value, name: str) -> Value:
    """A one-element tensor seen as a scalar (conditions are [] or [1])."""
    if value.is_const:
        return const_value(name, np.asarray(value.data).reshape(()))
    if value.size != 1:
        raise UnsupportedOpError(f"condition {value.name!r} has shape {ctx.shape(value)}, "
                                 f"expected a single element")
    scalar = Value(name)
    ctx.alias(scalar, value, ())
    return scalar


def _truth(value: Value):
    """True/False for a constant condition, None when known only at run time."""
    return bool(np.asarray(value.data).reshape(-1)[0]) if value.is_const else None


@op("If")
def if_op(ctx, node) -> None:
    cond = node.inputs[0]
    branches = (node.attrs["then_branch"], node.attrs["else_branch"])
    known = _truth(cond)
    if known is not None:
        outs = _inline(ctx, node, branches[0 if known else 1], {}, "")
        for out, src in zip(node.outputs, outs):
            _forward(ctx, out, src)
        return
    then_outs = _inline(ctx, node, branches[0], {}, "then/")
    else_outs = _inline(ctx, node, branches[1], {}, "else/")
    flag = _scalar(ctx, cond, f"{node.name}/cond")
    selects = []
    for out, a, b in zip(node.outputs, then_outs, else_outs):
        if ctx.shape(a) != ctx.shape(b):
            raise UnsupportedOpError(
                f"{node.label()}: the condition {cond.name!r} is known only at run time and "
                f"output {out.name!r} has shape {ctx.shape(a)} in then_branch but "
                f"{ctx.shape(b)} in else_branch; clnet runs both branches and selects, which "
                f"needs equal shapes (make the condition a constant, computed from shapes or "
                f"from a small integer graph input)")
        selects.append(Node("Where", [flag, a, b], [out], name=f"{node.name}/select_{out.name}"))
    _lower_nodes(ctx, node, selects)


def _stack(ctx, node, out: Value, parts: list, axis: int, template) -> None:
    """out = the parts stacked along a new axis (each part seen with a 1 there)."""
    if not parts:
        shape = list(template or ())
        ctx.output(out, tuple(shape[:axis]) + (0,) + tuple(shape[axis:]), out.dtype)
        return
    shape = ctx.shape(parts[0])
    axis = axis + len(shape) + 1 if axis < 0 else axis
    views = []
    for index, part in enumerate(parts):
        view = Value(f"{out.name}/part{index}")
        ctx.alias(view, part, shape[:axis] + (1,) + shape[axis:])
        views.append(view)
    _lower_nodes(ctx, node, [Node("Concat", views, [out], {"axis": axis},
                                  name=f"{node.name}/stack_{out.name}")])


class _Carried:
    """Loop-carried values, predicated on a run-time `active` flag once there is one."""

    def __init__(self, ctx, node, values: list, active):
        self.ctx, self.node, self.values, self.active = ctx, node, list(values), active

    def update(self, new: list, step: int) -> None:
        if self.active is None or (self.active.is_const and _truth(self.active)):
            self.values = list(new)
            return
        kept = []
        nodes = []
        for index, (old, value) in enumerate(zip(self.values, new)):
            if self.ctx.shape(old) != self.ctx.shape(value):
                raise UnsupportedOpError(
                    f"{self.node.label()}: loop-carried value {index} changes shape with a "
                    f"condition known only at run time")
            result = Value(f"{self.node.name}/carried{index}_{step}")
            nodes.append(Node("Where", [self.active, value, old], [result],
                              name=f"{self.node.name}/keep{index}_{step}"))
            kept.append(result)
        _lower_nodes(self.ctx, self.node, nodes)
        self.values = kept


def _trip_count(ctx, node, m) -> "int | None":
    if m is None or not m.name:
        return None
    if not m.is_const:
        raise UnsupportedOpError(
            f"{node.label()}: the trip count {m.name!r} is computed on the device at run "
            f"time; clnet unrolls loops at load, so it must be a constant, computed from "
            f"shapes, or a graph input (then each value gets its own plan) (opset {ctx.opset})")
    return int(np.asarray(m.data).reshape(-1)[0])


@op("Loop", shape_inputs=(0, 1))   # unrolled at load: trip count, condition
def loop(ctx, node) -> None:
    inputs = real_inputs(node)
    body = node.attrs["body"]
    trip = _trip_count(ctx, node, node.input(0))
    cond = node.input(1) if len(inputs) > 1 and inputs[1] is not None \
        and inputs[1].name else None
    carried_in = inputs[2:]
    n_carried = len(carried_in)
    names = [v.name for v in body.graph.inputs]
    active = None if cond is None else _scalar(ctx, cond, f"{node.name}/cond_in")
    state = _Carried(ctx, node, carried_in, active)
    scans: list = []
    step = 0
    while trip is None or step < trip:
        if step >= MAX_ITERATIONS:
            raise UnsupportedOpError(
                f"{node.label()}: more than {MAX_ITERATIONS} iterations to unroll "
                f"(trip count {trip}); a condition computed at run time needs a trip count")
        if active is not None and active.is_const and not _truth(active):
            break
        flag = active if active is not None else const_value(f"{node.name}/true", True)
        bindings = {names[0]: const_value(f"{node.name}/i{step}", np.int64(step)),
                    names[1]: flag}
        bindings.update(zip(names[2:], state.values))
        outs = _inline(ctx, node, body, bindings, f"{step}/")
        state.update(outs[1:1 + n_carried], step)
        if len(outs) > 1 + n_carried:
            if not (active is None or active.is_const):
                raise UnsupportedOpError(
                    f"{node.label()}: scan outputs of a loop whose condition is known only "
                    f"at run time have a run-time length; not supported")
            scans.append(outs[1 + n_carried:])
        active = _next_active(ctx, node, active, outs[0], step)
        state.active = active
        step += 1
        if trip is None and not active.is_const:
            raise UnsupportedOpError(
                f"{node.label()}: a loop without a trip count whose condition is computed "
                f"at run time cannot be unrolled at load; give it a trip count (an upper "
                f"bound) or a condition computed from shapes")
    for out, value in zip(node.outputs[:n_carried], state.values):
        _forward(ctx, out, value)
    for k, out in enumerate(node.outputs[n_carried:]):
        template = body.graph.outputs[1 + n_carried + k].shape
        _stack(ctx, node, out, [parts[k] for parts in scans], 0, template)


def _next_active(ctx, node, active, cond_out: Value, step: int) -> Value:
    cond_out = _scalar(ctx, cond_out, f"{node.name}/cond{step}")
    if cond_out.is_const and not _truth(cond_out):
        return cond_out
    if active is None or (active.is_const and _truth(active)):
        return cond_out
    both = Value(f"{node.name}/active{step}")
    _lower_nodes(ctx, node, [Node("And", [active, cond_out], [both],
                                  name=f"{node.name}/and{step}")])
    return both


def _gather(ctx, node, x: Value, index: int, axis: int, tag: str) -> Value:
    """x indexed at `index` along `axis` (that axis removed)."""
    part = Value(f"{node.name}/{tag}")
    _lower_nodes(ctx, node, [Node("Gather", [x, const_value(f"{node.name}/{tag}_i",
                                                            np.int64(index))],
                                  [part], {"axis": axis}, name=f"{node.name}/{tag}_g")])
    return part


def _scan_steps(ctx, node, state: list, scan_in: list, in_axes: list, in_dirs: list,
                tag: str) -> tuple:
    """Run the body over the scan axis; (final state, per-output lists of slices)."""
    body = node.attrs["body"]
    lengths = {ctx.shape(x)[axis] for x, axis in zip(scan_in, in_axes)}
    if len(lengths) != 1:
        raise ValueError(f"scan inputs have different lengths {sorted(lengths)}")
    iterations = lengths.pop()
    if iterations > MAX_ITERATIONS:
        raise UnsupportedOpError(f"{node.label()}: {iterations} iterations exceed the "
                                 f"{MAX_ITERATIONS} clnet unrolls")
    names = [v.name for v in body.graph.inputs]
    n_out = len(body.graph.outputs) - len(state)
    collected = [[] for _ in range(n_out)]
    for step in range(iterations):
        slices = []
        for j, (x, axis) in enumerate(zip(scan_in, in_axes)):
            t = iterations - 1 - step if in_dirs[j] else step
            slices.append(_gather(ctx, node, x, t, axis, f"{tag}x{j}_{t}"))
        bindings = dict(zip(names, list(state) + slices))
        outs = _inline(ctx, node, body, bindings, f"{tag}{step}/")
        state = list(outs[:len(state)])
        for k in range(n_out):
            collected[k].append(outs[len(state) + k])
    return state, collected


@op("Scan", since=9)
def scan(ctx, node) -> None:
    inputs = real_inputs(node)
    n_scan = int(node.attrs["num_scan_inputs"])
    n_state = len(inputs) - n_scan
    scan_in = inputs[n_state:]
    in_axes = list(node.attrs.get("scan_input_axes") or [0] * n_scan)
    in_dirs = list(node.attrs.get("scan_input_directions") or [0] * n_scan)
    n_out = len(node.outputs) - n_state
    out_axes = list(node.attrs.get("scan_output_axes") or [0] * n_out)
    out_dirs = list(node.attrs.get("scan_output_directions") or [0] * n_out)
    in_axes = [a + len(ctx.shape(x)) if a < 0 else a for a, x in zip(in_axes, scan_in)]
    state, collected = _scan_steps(ctx, node, list(inputs[:n_state]), scan_in, in_axes,
                                   in_dirs, "")
    for out, value in zip(node.outputs[:n_state], state):
        _forward(ctx, out, value)
    body = node.attrs["body"]
    for k, out in enumerate(node.outputs[n_state:]):
        parts = collected[k][::-1] if out_dirs[k] else collected[k]
        template = body.graph.outputs[n_state + k].shape
        _stack(ctx, node, out, parts, out_axes[k], template)


@op("Scan", since=8)
def scan_batched(ctx, node) -> None:
    """Scan-8: a leading batch axis on every input, the body runs per example."""
    inputs = real_inputs(node)
    lens = inputs[0] if inputs and inputs[0] is not None and inputs[0].name else None
    n_scan = int(node.attrs["num_scan_inputs"])
    n_state = len(inputs) - 1 - n_scan
    states, scan_in = inputs[1:1 + n_state], inputs[1 + n_state:]
    batch = ctx.shape(scan_in[0])[0]
    length = ctx.shape(scan_in[0])[1]
    if lens is not None and not (lens.is_const and (np.asarray(lens.data) == length).all()):
        raise UnsupportedOpError(f"{node.label()}: Scan-8 with sequence_lens shorter than the "
                                 f"sequence is not supported")
    dirs = list(node.attrs.get("directions") or [0] * n_scan)
    finals = [[] for _ in range(n_state)]
    outputs = [[] for _ in range(len(node.outputs) - n_state)]
    for b in range(batch):
        state = [_gather(ctx, node, v, b, 0, f"b{b}s{i}") for i, v in enumerate(states)]
        seqs = [_gather(ctx, node, v, b, 0, f"b{b}x{i}") for i, v in enumerate(scan_in)]
        state, collected = _scan_steps(ctx, node, state, seqs, [0] * n_scan, dirs, f"b{b}/")
        for i, value in enumerate(state):
            finals[i].append(value)
        for k, parts in enumerate(collected):
            per_example = Value(f"{node.name}/b{b}y{k}")
            _stack(ctx, node, per_example, parts, 0, None)
            outputs[k].append(per_example)
    for out, parts in zip(node.outputs, finals + outputs):
        _stack(ctx, node, out, parts, 0, None)
