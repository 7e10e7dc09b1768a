"""Ops on kernels_cl/misc.cl: CausalConvWithState (opset 27: causal
depthwise 1-D conv carrying its last k-1 inputs, optional bias, past_state
and SiLU), SwiGLU (opset 28), LinearAttention (opset 27: linear, gated,
delta and gated-delta rules, GQA), RoiAlign (avg/max, both coordinate
modes), 2-D DeformConv (groups, offset groups, mask, bias) and Det
(Gaussian elimination with partial pivoting, a work-item per matrix)."""
from __future__ import annotations

import numpy as np

from ..errors import UnsupportedOpError
from ._util import int_vec, require_float
from .registry import op

ACTIVATIONS = {"none": 0, "silu": 1, "swish": 1}


def _or(value, fallback):
    return fallback if value is None else value


@op("CausalConvWithState", since=27)
def causal_conv_with_state(ctx, node, activation: str = "none"):
    require_float(ctx, node)
    x, weight = node.inputs[0], node.inputs[1]
    bias, past = node.input(2), node.input(3)
    activation = node.attrs.get("activation", activation)
    if isinstance(activation, bytes):
        activation = activation.decode()
    if activation not in ACTIVATIONS:
        raise UnsupportedOpError(f"{node.label()}: activation {activation!r} is not one of "
                                 f"{sorted(ACTIVATIONS)} (opset {ctx.opset})")
    shape, w_shape = ctx.shape(x), ctx.shape(weight)
    if len(shape) != 3 or len(w_shape) != 3 or w_shape[:2] != (shape[1], 1) or w_shape[2] < 1:
        raise ValueError(f"CausalConvWithState needs input (B, C, L) and weight (C, 1, k), "
                         f"got {shape} and {w_shape}")
    batch, channels, length = shape
    k = w_shape[2]
    state_shape = (batch, channels, k - 1)
    if bias is not None and ctx.shape(bias) != (channels,):
        raise ValueError(f"bias {bias.name!r} has shape {ctx.shape(bias)}, expected "
                         f"({channels},)")
    if past is not None and ctx.shape(past) != state_shape:
        raise ValueError(f"past_state {past.name!r} has shape {ctx.shape(past)}, expected "
                         f"{state_shape}")
    out = ctx.output(node.outputs[0], shape, x.dtype)
    present = node.outputs[1] if len(node.outputs) > 1 and node.outputs[1].name else None
    present = ctx.output(present, state_shape, x.dtype) if present is not None else None
    scratch = ctx.scratch(4) if present is None or bias is None or past is None else None
    defines = {"HAS_BIAS": int(bias is not None), "HAS_PAST": int(past is not None),
               "SILU": ACTIVATIONS[activation]}
    # the present_state items are only launched when the state is wanted
    width = length + (k - 1 if present is not None else 0)
    ctx.launch("misc", (width, batch * channels),
               [x, weight, _or(bias, scratch), _or(past, scratch), out, _or(present, scratch),
                np.int32(channels), np.int32(length), np.int32(k)], defines,
               entry="causal_conv")


@op("SwiGLU", since=28)
def swiglu(ctx, node, alpha: float = 1.0):
    require_float(ctx, node)
    a, b = node.inputs[0], node.inputs[1]
    if ctx.shape(a) != ctx.shape(b):
        raise ValueError(f"SwiGLU inputs must have one shape (no broadcasting), got "
                         f"{ctx.shape(a)} and {ctx.shape(b)}")
    out = ctx.output(node.outputs[0], ctx.shape(a), a.dtype)
    size = out.size
    ctx.launch("misc", (size,), [a, b, out, np.float32(node.attrs.get("alpha", alpha)),
                                 np.int32(size)], entry="swiglu")


RULES = {"linear": (False, False), "gated": (True, False), "delta": (False, True),
         "gated_delta": (True, True)}


def _linear_attention_shapes(ctx, node, heads_q: int, heads_kv: int) -> tuple:
    """(batch, steps, d_k, d_v) of a LinearAttention node, its inputs checked."""
    q, k, v = node.inputs[:3]
    shapes = [ctx.shape(x) for x in (q, k, v)]
    if any(len(s) != 3 for s in shapes) or heads_q <= 0 or heads_kv <= 0 \
            or heads_q % heads_kv:
        raise ValueError(f"LinearAttention needs rank-3 query/key/value and q_num_heads a "
                         f"positive multiple of kv_num_heads, got {shapes}, {heads_q}, "
                         f"{heads_kv}")
    batch, steps, _ = shapes[0]
    dk, dv = shapes[0][2] // heads_q, shapes[2][2] // heads_kv
    if shapes[0] != (batch, steps, heads_q * dk) or shapes[1] != (batch, steps, heads_kv * dk) \
            or shapes[2] != (batch, steps, heads_kv * dv):
        raise ValueError(f"LinearAttention query/key/value shapes {shapes} do not fit "
                         f"{heads_q} query and {heads_kv} key/value heads")
    return batch, steps, dk, dv


@op("LinearAttention", since=27)
def linear_attention(ctx, node, update_rule: str = "gated_delta", scale: float = 0.0):
    require_float(ctx, node)
    rule = node.attrs.get("update_rule", update_rule)
    rule = rule.decode() if isinstance(rule, bytes) else rule
    if rule not in RULES:
        raise UnsupportedOpError(f"{node.label()}: update_rule {rule!r} is not one of "
                                 f"{sorted(RULES)} (opset {ctx.opset})")
    gated, delta = RULES[rule]
    heads_q, heads_kv = node.attrs.get("q_num_heads", 0), node.attrs.get("kv_num_heads", 0)
    batch, steps, dk, dv = _linear_attention_shapes(ctx, node, heads_q, heads_kv)
    past, decay, beta = node.input(3), node.input(4), node.input(5)
    if (decay is not None) != gated or (beta is not None) != delta:
        raise ValueError(f"update_rule {rule!r} needs {'a' if gated else 'no'} decay and "
                         f"{'a' if delta else 'no'} beta input")
    state_shape = (batch, heads_kv, dk, dv)
    if past is not None and ctx.shape(past) != state_shape:
        raise ValueError(f"past_state {past.name!r} has shape {ctx.shape(past)}, expected "
                         f"{state_shape}")
    defines = {"GATED": int(gated), "DELTA": int(delta), "HAS_PAST": int(past is not None)}
    if gated:
        last = ctx.shape(decay)[-1]
        if ctx.shape(decay) not in ((batch, steps, heads_kv), (batch, steps, heads_kv * dk)):
            raise ValueError(f"decay shape {ctx.shape(decay)} must be (B, T, H_kv) or "
                             f"(B, T, H_kv * d_k)")
        defines["DECAY_PER_KEY"] = int(last == heads_kv * dk and last != heads_kv)
    if delta:
        if ctx.shape(beta) not in ((batch, steps, heads_kv), (batch, steps, 1)):
            raise ValueError(f"beta shape {ctx.shape(beta)} must be (B, T, H_kv) or (B, T, 1)")
        defines["BETA_PER_HEAD"] = int(ctx.shape(beta)[-1] == heads_kv)
    q = node.inputs[0]
    out = ctx.output(node.outputs[0], (batch, steps, heads_q * dv), q.dtype)
    present = node.outputs[1] if len(node.outputs) > 1 and node.outputs[1].name else None
    state_dtype = past.dtype if past is not None else q.dtype
    state = ctx.scratch(4 * batch * heads_kv * dk * dv)
    present = ctx.output(present, state_shape, state_dtype) if present is not None \
        else ctx.scratch(4 * batch * heads_kv * dk * dv)
    scale = float(node.attrs.get("scale", scale)) or 1.0 / float(np.sqrt(dk))
    spare = ctx.scratch(4)
    ctx.launch("misc", (dv, heads_kv, batch),
               [q, node.inputs[1], node.inputs[2], _or(past, spare), _or(decay, spare),
                _or(beta, spare), out, present, state, np.int32(steps), np.int32(heads_q),
                np.int32(heads_kv), np.int32(dk), np.int32(dv), np.float32(scale)],
               defines, entry="linear_attention")


@op("RoiAlign", since=10)
def roi_align(ctx, node, mode: str = "avg", output_height: int = 1, output_width: int = 1,
              sampling_ratio: int = 0, spatial_scale: float = 1.0):
    x, rois, batch_index = node.inputs[:3]
    if x.dtype.kind != "f" or rois.dtype.kind != "f" or batch_index.dtype != np.int64:
        raise UnsupportedOpError(f"{node.label()}: RoiAlign on {x.dtype} data, {rois.dtype} "
                                 f"rois and {batch_index.dtype} batch indices (opset "
                                 f"{ctx.opset})")
    shape, r_shape = ctx.shape(x), ctx.shape(rois)
    if len(shape) != 4 or len(r_shape) != 2 or r_shape[1] != 4 \
            or ctx.shape(batch_index) != (r_shape[0],):
        raise ValueError(f"RoiAlign needs X (N, C, H, W), rois (R, 4) and batch_indices (R,), "
                         f"got {shape}, {r_shape}, {ctx.shape(batch_index)}")
    mode = node.attrs.get("mode", mode)
    mode = mode.decode() if isinstance(mode, bytes) else mode
    default = "half_pixel" if ctx.opset >= 16 else "output_half_pixel"
    coords = node.attrs.get("coordinate_transformation_mode", default)
    coords = coords.decode() if isinstance(coords, bytes) else coords
    if mode not in ("avg", "max") or coords not in ("half_pixel", "output_half_pixel"):
        raise UnsupportedOpError(f"{node.label()}: RoiAlign mode {mode!r}, coordinate mode "
                                 f"{coords!r} (opset {ctx.opset})")
    if batch_index.is_const and not np.all((batch_index.data >= 0)
                                           & (batch_index.data < shape[0])):
        raise ValueError(f"RoiAlign batch_indices {batch_index.data.tolist()} must lie in "
                         f"[0, {shape[0]})")
    out_h = int(node.attrs.get("output_height", output_height))
    out_w = int(node.attrs.get("output_width", output_width))
    out = ctx.output(node.outputs[0], (r_shape[0], shape[1], out_h, out_w), x.dtype)
    defines = {"MAX_MODE": int(mode == "max"), "HALF_PIXEL": int(coords == "half_pixel"),
               "SAMPLING": int(node.attrs.get("sampling_ratio", sampling_ratio))}
    ctx.launch("misc", (out_w, out_h, r_shape[0] * shape[1]),
               [x, rois, batch_index, out, np.int32(shape[1]), np.int32(shape[2]),
                np.int32(shape[3]), np.int32(out_h), np.int32(out_w),
                np.float32(node.attrs.get("spatial_scale", spatial_scale)),
                np.int32(shape[0])], defines, entry="roi_align")


def _deform_geometry(ctx, node, shape, w_shape, groups: int, offset_groups: int) -> tuple:
    """(output (h, w), the kernel's int16 geometry) of a 2-D DeformConv."""
    k_h, k_w = node.attrs.get("kernel_shape", w_shape[2:])
    s_h, s_w = node.attrs.get("strides", (1, 1))
    d_h, d_w = node.attrs.get("dilations", (1, 1))
    top, left, bottom, right = node.attrs.get("pads", (0, 0, 0, 0))
    out_h = (shape[2] + top + bottom - ((k_h - 1) * d_h + 1)) // s_h + 1
    out_w = (shape[3] + left + right - ((k_w - 1) * d_w + 1)) // s_w + 1
    in_per_group = shape[1] // groups
    if w_shape[1] != in_per_group or w_shape[0] % groups or shape[1] % offset_groups \
            or (k_h, k_w) != tuple(w_shape[2:]):
        raise ValueError(f"DeformConv X {shape}, W {w_shape}, group {groups}, offset_group "
                         f"{offset_groups} do not fit")
    geo = (shape[2], shape[3], out_h, out_w, k_h, k_w, s_h, s_w, top, left, d_h, d_w,
           in_per_group, w_shape[0] // groups, shape[1] // offset_groups, shape[1])
    return (out_h, out_w), int_vec(geo, 16)


@op("DeformConv", since=19)
def deform_conv(ctx, node, group: int = 1, offset_group: int = 1):
    require_float(ctx, node)
    x, weight, offset = node.inputs[:3]
    bias, mask = node.input(3), node.input(4)
    shape, w_shape = ctx.shape(x), ctx.shape(weight)
    if len(shape) != 4 or len(w_shape) != 4:
        raise UnsupportedOpError(f"{node.label()}: DeformConv on a {len(shape) - 2}-D input; "
                                 f"clnet supports 2-D (opset {ctx.opset})")
    groups = int(node.attrs.get("group", group))
    offset_groups = int(node.attrs.get("offset_group", offset_group))
    (out_h, out_w), geo = _deform_geometry(ctx, node, shape, w_shape, groups, offset_groups)
    taps = w_shape[2] * w_shape[3]
    if ctx.shape(offset) != (shape[0], offset_groups * taps * 2, out_h, out_w):
        raise ValueError(f"DeformConv offset {ctx.shape(offset)} does not fit output "
                         f"({out_h}, {out_w}) and {offset_groups} offset groups")
    if mask is not None and ctx.shape(mask) != (shape[0], offset_groups * taps, out_h, out_w):
        raise ValueError(f"DeformConv mask {ctx.shape(mask)} does not fit")
    out = ctx.output(node.outputs[0], (shape[0], w_shape[0], out_h, out_w), x.dtype)
    spare = ctx.scratch(4)
    ctx.launch("misc", (out_w, out_h, shape[0] * w_shape[0]),
               [x, weight, offset, _or(bias, spare), _or(mask, spare), out, geo,
                np.int32(w_shape[0])],
               {"HAS_BIAS": int(bias is not None), "HAS_MASK": int(mask is not None)},
               entry="deform_conv")


@op("Det", since=11)
def det(ctx, node):
    require_float(ctx, node)
    x = node.inputs[0]
    shape = ctx.shape(x)
    if len(shape) < 2 or shape[-1] != shape[-2]:
        raise ValueError(f"Det input {x.name!r} must end in a square matrix, got {shape}")
    out = ctx.output(node.outputs[0], shape[:-2], x.dtype)
    count, n = int(np.prod(shape[:-2], dtype=np.int64)), shape[-1]
    work = ctx.scratch(4 * max(count * n * n, 1))
    ctx.launch("misc", (count,), [x, out, work, np.int32(n), np.int32(count)], entry="det")
