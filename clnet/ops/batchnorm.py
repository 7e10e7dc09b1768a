"""BatchNormalization as one per-channel multiply-add on kernels_cl/elementwise.cl.
The pure affine, shared with BatchNorm folding, is passes/batchnorm.py's."""
from __future__ import annotations

from ..graph import Value
from ..passes.batchnorm import node_batchnorm_affine
from ._util import broadcast_strides, contiguous_strides, require_float
from .reduce import emit_reduce
from .registry import op
from .strided import emit_map, emit_strided


@op("BatchNormalization")
def batch_norm(ctx, node, epsilon: float = 1e-5):
    """Inference form: y = x * scale' + shift' with per-channel constants;
    run-time parameters or training mode compute scale' and shift' on the
    device first (training mode from the batch's own mean and variance)."""
    require_float(ctx, node)
    x = node.inputs[0]
    params = node.inputs[1:5]
    shape = ctx.shape(x)
    channel_shape = (shape[1],) + (1,) * max(len(shape) - 2, 0)
    out = node.outputs[0]
    ctx.output(out, shape, x.dtype)
    training = bool(node.attrs.get("training_mode", 0))
    if all(p is not None and p.is_const for p in params) and not training:
        scale, shift = node_batchnorm_affine(node)
        s_w = ctx.weight(scale.reshape(channel_shape), (node.inputs[1].name, "bn_scale"))
        b_w = ctx.weight(shift.reshape(channel_shape), (node.inputs[1].name, "bn_shift"))
    else:
        s_w, b_w = _batchnorm_device_affine(ctx, node, training,
                                            node.attrs.get("epsilon", epsilon))
    strides_c = broadcast_strides(channel_shape, shape)
    emit_strided(ctx, out, shape, contiguous_strides(shape), 0,
                 [(x, contiguous_strides(shape), 0), (s_w, strides_c, 0), (b_w, strides_c, 0)],
                 "a*b+c")


def _batchnorm_device_affine(ctx, node, training: bool, eps: float) -> tuple:
    """Per-channel (scale', shift') computed on the device."""
    x, gamma, beta, mean, var = node.inputs[:5]
    name = node.outputs[0].name
    temp = {k: Value(f"{name}#{k}") for k in ("mean", "square", "meansq", "var", "s", "b")}
    if training:
        axes = [i for i in range(len(ctx.shape(x))) if i != 1]
        emit_reduce(ctx, temp["mean"], x, axes, False, "ReduceMean")
        emit_map(ctx, temp["square"], [x], "a*a")
        emit_reduce(ctx, temp["meansq"], temp["square"], axes, False, "ReduceMean")
        emit_map(ctx, temp["var"], [temp["meansq"], temp["mean"]], "fmax(a-b*b,0.0f)")
        momentum = node.attrs.get("momentum", 0.9)
        for index, (running, batch) in enumerate(((mean, temp["mean"]), (var, temp["var"])),
                                                 start=1):
            if len(node.outputs) > index and node.outputs[index].name:
                emit_map(ctx, node.outputs[index], [running, batch], "a*P0+b*(1.0f-P0)",
                         (momentum,))
        mean, var = temp["mean"], temp["var"]
    emit_map(ctx, temp["s"], [gamma, var], "a/sqrt(b+P0)", (eps,))
    emit_map(ctx, temp["b"], [beta, mean, temp["s"]], "a-b*c")
    return temp["s"], temp["b"]
