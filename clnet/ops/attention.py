"""Attention (opset 23) and RotaryEmbedding (opset 23) on kernels_cl/attention.cl.

Attention runs as three launches: scores (scaled Q.K, softcap, attention
mask, causal and sliding-window masks), a row softmax, and P.V.  Grouped
query attention maps q head h to kv head h // (q_heads / kv_heads); 3-D
inputs ([B, S, heads * D]) are read in place through strides.  A KV cache
(past_key/past_value) is concatenated into present_key/present_value first.
The MatMul/Softmax attention of older exports needs nothing from here: it
runs as the MatMul, Softmax and elementwise ops it is made of.
"""
from __future__ import annotations

import math

import numpy as np

from ..errors import UnsupportedOpError
from ._util import broadcast_strides, int_vec, require_float
from .registry import op
from .strided import emit_strided


def _heads_view(shape: tuple, heads: "int | None", what: str) -> tuple:
    """(batch, heads, length, head size) and the (batch, head, position) strides."""
    if len(shape) == 4:
        b, n, s, d = shape
        return (b, n, s, d), (n * s * d, s * d, d)
    if len(shape) == 3:
        if not heads:
            raise ValueError(f"3-D {what} needs the q_num_heads/kv_num_heads attribute")
        b, s, hidden = shape
        if hidden % heads:
            raise ValueError(f"{what} hidden size {hidden} is not a multiple of {heads} heads")
        d = hidden // heads
        return (b, heads, s, d), (s * hidden, d, hidden)
    raise ValueError(f"{what} must be 3-D or 4-D, got shape {shape}")


def _present(ctx, node, index: int, past, current, dims, strides):
    """present = concat(past, current) on the sequence axis, as [B, H, T, D]."""
    out = node.outputs[index] if len(node.outputs) > index and node.outputs[index].name \
        else None
    b, h, s, d = dims
    if past is None:
        if out is None:
            return current, strides
        if len(ctx.shape(current)) == 4:
            ctx.alias(out, current, ctx.shape(current))
            return out, strides
    p = ctx.shape(past)[2] if past is not None else 0
    total = (b, h, p + s, d)
    if out is not None:
        target = ctx.output(out, total, current.dtype)
    else:
        target = ctx.scratch(int(np.prod(total)) * ctx.storage_dtype(current.dtype).itemsize)
    full = (h * (p + s) * d, (p + s) * d, d, 1)
    if past is not None:
        if ctx.shape(past)[:2] != (b, h) or ctx.shape(past)[3] != d:
            raise ValueError(f"past shape {ctx.shape(past)} does not match {dims}")
        emit_strided(ctx, target, (b, h, p, d), full, 0,
                     [(past, (h * p * d, p * d, d, 1), 0)], "a")
    emit_strided(ctx, target, (b, h, s, d), full, p * d, [(current, tuple(strides) + (1,), 0)],
                 "a")
    return target, full[:3]


def _mask_args(ctx, mask, dims: tuple) -> tuple:
    """(buffer, strides int4, length, defines) of the optional attn_mask."""
    if mask is None:
        return None, int_vec(()), 0, {}
    shape = ctx.shape(mask)
    length = shape[-1] if shape else 1
    full = tuple(dims[:3]) + (length,)
    padded = (1,) * (4 - len(shape)) + tuple(shape)
    strides = broadcast_strides(padded, full)
    defines = {"HAS_MASK": True}
    if mask.dtype == np.bool_:
        defines.update(MASK_BOOL=True, MASK_T="uchar")
    elif mask.dtype is not None and mask.dtype.kind != "f":
        raise UnsupportedOpError(f"attn_mask {mask.name!r} must be bool or float, "
                                 f"got {mask.dtype}")
    return mask, int_vec(strides), length, defines


@op("Attention", since=23)
def attention(ctx, node) -> None:
    q, k, v = node.inputs[:3]
    mask, past_k, past_v = (node.input(i) for i in (3, 4, 5))
    mask, past_k, past_v = (x if x is not None and x.name else None
                            for x in (mask, past_k, past_v))
    nonpad = node.input(6)
    nonpad = nonpad if nonpad is not None and nonpad.name else None
    require_float(ctx, node, q, k, v)
    attrs = node.attrs
    q_dims, q_strides = _heads_view(ctx.shape(q), attrs.get("q_num_heads"), "Q")
    k_dims, k_strides = _heads_view(ctx.shape(k), attrs.get("kv_num_heads"), "K")
    v_dims, v_strides = _heads_view(ctx.shape(v), attrs.get("kv_num_heads"), "V")
    b, hq, q_len, d = q_dims
    hk = k_dims[1]
    if hq % hk or k_dims[3] != d or v_dims[1] != hk or v_dims[2] != k_dims[2]:
        raise ValueError(f"Q {ctx.shape(q)}, K {ctx.shape(k)}, V {ctx.shape(v)} do not "
                         f"form multi-head (or grouped-query) attention")
    if (past_k is None) != (past_v is None):
        raise ValueError("past_key and past_value must be given together")
    k_buf, k_strides = _present(ctx, node, 1, past_k, k, k_dims, k_strides)
    v_buf, v_strides = _present(ctx, node, 2, past_v, v, v_dims, v_strides)
    past = ctx.shape(past_k)[2] if past_k is not None else 0
    total = k_dims[2] + past
    dv = v_dims[3]
    y_shape = (b, hq, q_len, dv) if len(ctx.shape(q)) == 4 else (b, q_len, hq * dv)
    y = ctx.output(node.outputs[0], y_shape, q.dtype)
    y_strides = _heads_view(y_shape, hq, "Y")[1]
    mode = int(attrs.get("qk_matmul_output_mode", 0))
    qk = node.outputs[3] if len(node.outputs) > 3 and node.outputs[3].name else None
    if qk is not None:
        ctx.output(qk, (b, hq, q_len, total), q.dtype)
    mask_buf, mask_strides, mask_len, defines = _mask_args(ctx, mask, (b, hq, q_len))
    defines["QK_MODE"] = mode if qk is not None else -1
    if nonpad is not None:
        if past_k is not None:
            raise ValueError("nonpad_kv_seqlen cannot be combined with past_key/past_value")
        defines["HAS_NONPAD"] = True
    if int(attrs.get("is_causal", 0)):
        defines["IS_CAUSAL"] = True
    scale = attrs.get("scale")
    scale = 1.0 / math.sqrt(d) if scale is None else float(scale)
    shape = int_vec((hq, hk, q_len, total, d, dv, past, mask_len), 8)
    window = int_vec((int(attrs.get("left_window_size", -1)),
                      int(attrs.get("right_window_size", -1))))
    scores = ctx.scratch(4 * b * hq * q_len * total)
    qk_arg = qk if qk is not None else scores
    ctx.launch("attention", (total, q_len, b * hq),
               [q, k_buf, mask_buf if mask_buf is not None else q, scores, qk_arg, shape,
                int_vec(q_strides), int_vec(k_strides), mask_strides, np.float32(scale),
                np.float32(attrs.get("softcap", 0.0) or 0.0), window,
               nonpad if nonpad is not None else q],
               defines, entry="attn_scores")
    ctx.launch("attention", (b * hq * q_len,), [scores, qk_arg, np.int32(total)],
               {"QK_MODE": defines["QK_MODE"]}, entry="attn_softmax")
    ctx.launch("attention", (dv, q_len, b * hq),
               [scores, v_buf, y, shape, int_vec(v_strides), int_vec(y_strides)],
               entry="attn_pv")


@op("RotaryEmbedding", since=23)
def rotary_embedding(ctx, node) -> None:
    x, cos, sin = node.inputs[:3]
    require_float(ctx, node, x, cos, sin)
    pos = node.input(3)
    pos = pos if pos is not None and pos.name else None
    attrs = node.attrs
    x_shape = ctx.shape(x)
    if len(x_shape) == 4:
        b, heads, s, d = x_shape
        strides = (heads * s * d, d, s * d)
    elif len(x_shape) == 3:
        heads = int(attrs.get("num_heads", 0))
        if not heads or x_shape[2] % heads:
            raise ValueError(f"3-D input {x_shape} needs num_heads dividing its hidden size")
        b, s, hidden = x_shape
        d = hidden // heads
        strides = (s * hidden, hidden, d)
    else:
        raise ValueError(f"input must be 3-D or 4-D, got {x_shape}")
    rot = int(attrs.get("rotary_embedding_dim", 0)) or d
    if rot > d or rot % 2 or ctx.shape(cos)[-1] != rot // 2 or ctx.shape(sin) != ctx.shape(cos):
        raise ValueError(f"rotary_embedding_dim {rot}, head size {d} and cos/sin caches "
                         f"{ctx.shape(cos)}/{ctx.shape(sin)} do not fit")
    out = ctx.output(node.outputs[0], x_shape, x.dtype)
    defines = {"INTERLEAVED": True} if int(attrs.get("interleaved", 0)) else {}
    if pos is not None:
        defines["HAS_POSITIONS"] = True
        if pos.dtype != np.int64:
            defines["POS_T"] = "int"
    elif ctx.shape(cos)[:2] != (b, s):
        raise ValueError(f"without position_ids the caches must be [batch, seq, rot/2], got "
                         f"{ctx.shape(cos)}")
    ctx.launch("attention", (d, s * heads, b),
               [x, cos, sin, pos if pos is not None else x, out,
                int_vec((heads, s, d, rot)), int_vec(strides)], defines, entry="rotary")
