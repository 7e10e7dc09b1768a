"""RNN, GRU and LSTM on kernels_cl/rnn.cl (+ gemm.cl for the input projection).

One GEMM computes X * W^T for every time step and direction at once; then,
per time step and direction, one fused kernel does the recurrent dot
products, the gates and the state update (GRU without linear_before_reset
needs two: the reset gate must be complete before h~).  All launches are
prebound at load, so a sequence of length T costs 2T(+1) enqueues per
direction and no host work.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from pyopencl import cltypes

from ..errors import UnsupportedOpError
from ..graph import Value
from ._util import int_vec, require_float
from .gemm import gemm_general
from .registry import op
from .strided import emit_strided

# name -> (kind in rnn.cl, default alpha, default beta, uses alpha, uses beta)
ACTIVATIONS = {
    "relu": (0, 0.0, 0.0, False, False), "tanh": (1, 0.0, 0.0, False, False),
    "sigmoid": (2, 0.0, 0.0, False, False), "affine": (3, 1.0, 0.0, True, True),
    "leakyrelu": (4, 0.01, 0.0, True, False), "thresholdedrelu": (5, 1.0, 0.0, True, False),
    "scaledtanh": (6, 1.0, 1.0, True, True), "hardsigmoid": (7, 0.2, 0.5, True, True),
    "elu": (8, 1.0, 0.0, True, False), "softsign": (9, 0.0, 0.0, False, False),
    "softplus": (10, 0.0, 0.0, False, False),
}
CELLS = {  # op -> (gates, default activations per direction, kernel)
    "RNN": (1, ("Tanh",), "rnn_step"),
    "GRU": (3, ("Sigmoid", "Tanh"), "gru_step"),
    "LSTM": (4, ("Sigmoid", "Tanh", "Tanh"), "lstm_step"),
}
DIRECTIONS = {"forward": 1, "reverse": 1, "bidirectional": 2}


def activation_args(node, per_dir: tuple, n_dirs: int) -> list:
    """Per direction: (kinds int4, alpha float4, beta float4) of the cell's functions."""
    names = list(node.attrs.get("activations") or per_dir * n_dirs)
    n = len(per_dir)
    if len(names) == n and n_dirs == 2:
        names = names * 2
    if len(names) != n * n_dirs:
        raise ValueError(f"activations {names} must list {n} functions per direction")
    alphas = list(node.attrs.get("activation_alpha") or [])
    betas = list(node.attrs.get("activation_beta") or [])
    result = []
    for d in range(n_dirs):
        kinds, alpha, beta = [0] * 4, [0.0] * 4, [0.0] * 4
        for i, name in enumerate(names[d * n:(d + 1) * n]):
            spec = ACTIVATIONS.get(str(name).lower())
            if spec is None:
                raise UnsupportedOpError(f"{node.label()}: activation {name!r} is not one of "
                                         f"{sorted(ACTIVATIONS)}")
            kinds[i], alpha[i], beta[i] = spec[0], spec[1], spec[2]
            if spec[3] and alphas:
                alpha[i] = float(alphas.pop(0))
            if spec[4] and betas:
                beta[i] = float(betas.pop(0))
        result.append((int_vec(kinds), _float4(alpha), _float4(beta)))
    return result


def _float4(values) -> np.ndarray:
    return cltypes.make_float4(*[float(v) for v in values])


def _optional(ctx, node, index: int, shape: tuple, dtype, key: str):
    """Input `index`, or a constant of zeros (or sequence lengths) if omitted."""
    value = node.input(index)
    if value is not None and value.name:
        return value, True
    return ctx.weight(np.zeros(shape, dtype=dtype), (node.name, key) + shape), False


def _input_projection(ctx, node, x, w, rows: int, n_in: int, cols: int) -> Value:
    """xw[rows][cols] = X[rows][n_in] @ W^T (all directions side by side)."""
    xw = Value(f"{node.name}::xw")
    ctx.output(xw, (rows, cols), np.float32)
    if w.is_const:
        w_t = Value(f"{w.name}::T", data=np.ascontiguousarray(
            np.asarray(w.data, np.float32).reshape(cols, n_in).T))
        w_t.shape, w_t.dtype = w_t.data.shape, w_t.data.dtype
        b, b_strides = w_t, None
    else:
        b, b_strides = w, (cols * n_in, 1, n_in)
    first = len(ctx.launches)
    gemm_general(ctx, node, xw, x, (rows, n_in), b, (n_in, cols), (), rows, cols, n_in,
                 b_strides=b_strides)
    # xw is internal to this node: mark it written so schedulers order its readers
    for launch in ctx.launches[first:]:
        launch.writes = tuple(launch.writes) + (ctx.root(xw),)
    return xw


@dataclass
class Recurrence:
    """One RNN/GRU/LSTM node as lowered: sizes, buffers and cell options."""
    node: object
    gates: int
    n_dirs: int
    direction: str
    layout: int
    seq: int
    batch: int
    hidden: int
    y_shape: tuple
    y: object            # Y, or scratch of its size when Y is not wanted
    yh: object           # Y_h or None
    yc: object           # Y_c or None
    r: Value
    bias: object
    lens: object
    h0: object           # [dirs][batch][H] (zeros if absent)
    has_h0: bool
    c0: object
    has_c0: bool
    peep: object         # LSTM only
    acts: list           # per direction: (kinds, alpha, beta)
    defines: dict
    clip: float
    xw: object = None    # the input projection [seq * batch][dirs * gates * H]


def lower_recurrent(ctx, node) -> None:
    rec = _prepare(ctx, node)
    if rec is None:
        return
    units = ctx.policy.rnn_sequence_units(rec.hidden, rec.gates) if rec.seq else 0
    while units > 1 and rec.hidden % units and not rec.r.is_const:
        units //= 2     # R packed per run: whole work-items only (no padding)
    if units:
        _lower_sequence(ctx, rec, units)
    else:
        _lower_steps(ctx, rec)


def _prepare(ctx, node):
    """Outputs, optional inputs and the input projection; None if there is no work."""
    gates, per_dir, _ = CELLS[node.op]
    x, w, r = node.inputs[0], node.inputs[1], node.inputs[2]
    require_float(ctx, node, x, w, r)
    direction = node.attrs.get("direction", "forward")
    if direction not in DIRECTIONS:
        raise ValueError(f"direction {direction!r} is not forward, reverse or bidirectional")
    n_dirs = DIRECTIONS[direction]
    layout = int(node.attrs.get("layout", 0))
    x_shape, w_shape = ctx.shape(x), ctx.shape(w)
    seq, batch = (x_shape[1], x_shape[0]) if layout else x_shape[:2]
    n_in = x_shape[2]
    hidden = int(node.attrs.get("hidden_size", ctx.shape(r)[-1]))
    gh = gates * hidden
    if w_shape != (n_dirs, gh, n_in) or ctx.shape(r) != (n_dirs, gh, hidden):
        raise ValueError(f"W {w_shape} / R {ctx.shape(r)} do not match {n_dirs} direction(s), "
                         f"{gates} gates, hidden_size {hidden}, input size {n_in}")
    dtype = x.dtype
    y_shape = (batch, seq, n_dirs, hidden) if layout else (seq, n_dirs, batch, hidden)
    yh_shape = (batch, n_dirs, hidden) if layout else (n_dirs, batch, hidden)
    outs = list(node.outputs) + [Value("")] * (3 - len(node.outputs))
    y = ctx.output(outs[0], y_shape, dtype) if outs[0].name else \
        ctx.scratch(int(np.prod(y_shape)) * ctx.storage_dtype(dtype).itemsize)
    yh = ctx.output(outs[1], yh_shape, dtype) if outs[1].name else None
    yc = ctx.output(outs[2], yh_shape, dtype) \
        if node.op == "LSTM" and outs[2].name else None
    state_shape = (n_dirs, batch, hidden)
    bias, _ = _optional(ctx, node, 3, (n_dirs, 2 * gh), np.float32, "B")
    lens = node.input(4)
    if lens is None or not lens.name:
        lens = ctx.weight(np.full((batch,), seq, np.int32), (node.name, "lens", batch, seq))
    elif lens.is_const:
        lens = ctx.weight(np.asarray(lens.data, np.int32), (lens.name, "int32"))
    elif lens.dtype != np.int32:
        raise UnsupportedOpError(f"{node.label()}: sequence_lens must be int32, got "
                                 f"{lens.dtype}")
    h0, has_h0 = _optional(ctx, node, 5, state_shape, np.float32, "h0")
    if layout and has_h0:
        h0 = _transposed_state(ctx, node, h0, state_shape)
    c0, has_c0, peep = h0, False, None
    if node.op == "LSTM":
        c0, has_c0 = _optional(ctx, node, 6, state_shape, np.float32, "c0")
        if layout and has_c0:
            c0 = _transposed_state(ctx, node, c0, state_shape)
        peep, _ = _optional(ctx, node, 7, (n_dirs, 3 * hidden), np.float32, "P")
    if not batch or not hidden:
        return None
    defines = {}
    if node.op == "LSTM" and int(node.attrs.get("input_forget", 0)):
        defines["INPUT_FORGET"] = True
    if node.op == "GRU" and int(node.attrs.get("linear_before_reset", 0)):
        defines["LINEAR_BEFORE_RESET"] = True
    rec = Recurrence(node, gates, n_dirs, direction, layout, seq, batch, hidden, y_shape,
                     y, yh, yc, r, bias, lens, h0, has_h0, c0, has_c0, peep,
                     activation_args(node, per_dir, n_dirs), defines,
                     float(node.attrs.get("clip", 0.0) or 0.0))
    # an empty sequence still has states: Y_h/Y_c are the initial ones
    if seq:
        rec.xw = _input_projection(ctx, node, x, w, seq * batch, n_in, n_dirs * gh)
    return rec


def _lower_sequence(ctx, rec: Recurrence, units: int) -> None:
    """Every time step of every direction in one launch (rnn.cl rnn_seq & co):
    a work-group per (batch entry, direction) of H / units work-items."""
    node, hidden, n_dirs, batch, seq = rec.node, rec.hidden, rec.n_dirs, rec.batch, rec.seq
    gh = rec.gates * hidden
    # a work-item of several units reads its own rows as one contiguous run
    # (GRU T=300 H=128 on AVX-512 PoCL: 1.37 -> 0.82 ms); one of one unit
    # reads R transposed, so a GPU's neighbouring work-items read neighbouring
    # floats
    blocked = units if units > 1 else 0
    r_t = _recurrent_weights_packed(ctx, rec, blocked)
    x_tstride, x_bstride = (1, seq) if rec.layout else (batch, 1)
    cols = n_dirs * gh
    yh_strides = (hidden, n_dirs * hidden) if rec.layout else (batch * hidden, hidden)
    geo = int_vec((x_tstride * cols, x_bstride * cols) + _y_strides(rec.y_shape, rec.layout)
                  + yh_strides + (seq,), 8)
    reversed_dirs = 1 if rec.direction == "reverse" else 2 if n_dirs == 2 else 0
    wants = int(rec.yh is not None) | int(rec.yc is not None) << 1
    flags = int_vec((int(rec.has_h0), int(rec.has_c0), wants, reversed_dirs))
    acts = [rec.acts[min(i, n_dirs - 1)] for i in range(2)]
    act_args = [int_vec(acts[0][0].item() + acts[1][0].item(), 8),
                cltypes.make_float8(*acts[0][1].item(), *acts[1][1].item()),
                cltypes.make_float8(*acts[0][2].item(), *acts[1][2].item())]
    args = [rec.xw, r_t, rec.bias, rec.lens, rec.h0, rec.y,
            rec.yh if rec.yh is not None else rec.y, geo, flags, *act_args,
            np.float32(rec.clip)]
    if node.op == "LSTM":
        args += [rec.c0, rec.yc if rec.yc is not None else rec.y, rec.peep]
    defines = dict(rec.defines, RNN_HIDDEN=hidden, RNN_UNITS=units)
    if blocked:
        defines["RNN_BLOCKED"] = True
    items = -(-hidden // units)
    ctx.launch("rnn", (items, batch, n_dirs), args, defines,
               entry=CELLS[node.op][2].replace("_step", "_seq"), lsize=(items, 1, 1))


def _recurrent_weights_packed(ctx, rec: Recurrence, blocked: int):
    """R packed for rnn.cl's SEQ_DOT: [dirs][H (k)][gates * H] (R transposed),
    or with blocked = units, [dirs][items][H (k)][gates][units] (each work-item's
    rows contiguous; the last item's units past H are zero rows); a constant
    at load, else a strided copy per run (then units divide H)."""
    r, hidden, n_dirs, gates = rec.r, rec.hidden, rec.n_dirs, rec.gates
    gh = gates * hidden
    units = blocked or hidden
    items = -(-hidden // units)
    if r.is_const:
        data = np.asarray(r.data, np.float32).reshape(n_dirs, gates, hidden, hidden)
        padded = np.zeros((n_dirs, gates, items * units, hidden), np.float32)
        padded[:, :, :hidden] = data
        packed = padded.reshape(n_dirs, gates, items, units, hidden).transpose(0, 2, 4, 1, 3)
        return ctx.weight(np.ascontiguousarray(packed), (r.name, "rnn_packed", blocked))
    # dims (d, item, k, gate, unit) and R's strides along them
    shape = (n_dirs, items, hidden, gates, units)
    r_strides = (gh * hidden, units * hidden, 1, hidden * hidden, hidden)
    scratch = ctx.scratch(n_dirs * hidden * gh * ctx.itemsize(r))
    emit_strided(ctx, scratch, shape, _contiguous_strides(shape), 0, [(r, r_strides, 0)], "a")
    return scratch


def _contiguous_strides(shape: tuple) -> tuple:
    strides, step = [], 1
    for dim in reversed(shape):
        strides.append(step)
        step *= dim
    return tuple(reversed(strides))


def _lower_steps(ctx, rec: Recurrence) -> None:
    """A launch per time step and direction (rnn.cl rnn_step & co)."""
    node, hidden, n_dirs, batch, seq = rec.node, rec.hidden, rec.n_dirs, rec.batch, rec.seq
    gh = rec.gates * hidden
    kernel = CELLS[node.op][2]
    h_states = [ctx.scratch(4 * n_dirs * batch * hidden) for _ in range(2)]
    c_states = [ctx.scratch(4 * n_dirs * batch * hidden) for _ in range(2)] \
        if node.op == "LSTM" else None
    ctx.launch("rnn", (hidden, batch, n_dirs),
               [rec.h0, rec.c0, h_states[0], (c_states or h_states)[0],
                int_vec((int(rec.has_h0), int(rec.has_c0), int(c_states is not None)))],
               entry="rnn_init")
    defines = rec.defines
    reset = None
    if node.op == "GRU" and not defines:
        reset = [ctx.scratch(4 * n_dirs * batch * hidden) for _ in range(2)]
    x_tstride, x_bstride = (1, seq) if rec.layout else (batch, 1)
    y_strides = _y_strides(rec.y_shape, rec.layout)
    cols = n_dirs * gh
    xw, r, bias, lens, y = rec.xw, rec.r, rec.bias, rec.lens, rec.y
    for step in range(seq):
        src, dst = h_states[step % 2], h_states[(step + 1) % 2]
        for d in range(n_dirs):
            reverse = rec.direction == "reverse" or d == 1
            t = seq - 1 - step if reverse else step
            geo = int_vec((hidden, t, t * x_tstride * cols + d * gh, x_bstride * cols,
                           d * gh * hidden, d * 2 * gh, d * 3 * hidden, d * batch * hidden), 8)
            y_off = int_vec((t * y_strides[0] + d * y_strides[1], y_strides[2]))
            common = [geo, y_off, *rec.acts[d], np.float32(rec.clip)]
            head = [xw, r, bias, lens, src]
            if node.op == "LSTM":
                args = head + [dst, y] + common + [rec.peep, c_states[step % 2],
                                                   c_states[(step + 1) % 2]]
            elif reset is not None:
                ctx.launch("rnn", (hidden, batch), head + reset + common, defines,
                           entry="gru_reset")
                args = head + [dst, y] + common + reset
            elif node.op == "GRU":
                args = head + [dst, y] + common + [h_states[0], h_states[0]]
            else:
                args = head + [dst, y] + common
            ctx.launch("rnn", (hidden, batch), args, defines, entry=kernel)
    yh, yc = rec.yh, rec.yc
    if yh is not None or yc is not None:
        final_h, final_c = h_states[seq % 2], (c_states or h_states)[seq % 2]
        yh_strides = (hidden, n_dirs * hidden) if rec.layout else (batch * hidden, hidden)
        ctx.launch("rnn", (hidden, batch, n_dirs),
                   [final_h, final_c, yh if yh is not None else final_h,
                    yc if yc is not None else final_h,
                    int_vec(yh_strides + (int(yh is not None), int(yc is not None))), lens],
                   entry="rnn_final")


def _y_strides(y_shape: tuple, layout: int) -> tuple:
    """(t, direction, batch) element strides of Y."""
    if layout:
        _, seq, n_dirs, hidden = y_shape
        return n_dirs * hidden, hidden, seq * n_dirs * hidden
    _, n_dirs, batch, hidden = y_shape
    return n_dirs * batch * hidden, batch * hidden, hidden


def _transposed_state(ctx, node, value, state_shape):
    """initial_h/c in layout 1 ([batch, dirs, H]) copied to [dirs, batch, H]."""
    n_dirs, batch, hidden = state_shape
    nbytes = n_dirs * batch * hidden * ctx.itemsize(value)
    scratch = ctx.scratch(nbytes)
    emit_strided(ctx, scratch, state_shape, (batch * hidden, hidden, 1), 0,
                 [(value, (hidden, n_dirs * hidden, 1), 0)], "a")
    return scratch


@op("RNN", "GRU", "LSTM")
def recurrent(ctx, node) -> None:
    lower_recurrent(ctx, node)
