"""Resize (opset 10+) and Upsample on kernels_cl/resize.cl.

All modes are separable, so each resized axis is one pass over the tensor
with a per-axis table of (input index, weight) taps computed here at load
time: nearest (every nearest_mode; a bit copy for any dtype), linear and
cubic (exclude_outside, antialias), under every coordinate transformation.
Axes that map identically are skipped; downscaling axes run first so the
later passes touch fewer elements.
"""
from __future__ import annotations

import hashlib
import math

import numpy as np

from ..errors import UnsupportedOpError
from ._util import RAW_TYPES, const_input, contiguous_strides, norm_axis
from .registry import op
from .strided import emit_strided

MODES = ("nearest", "linear", "cubic")
TRANSFORMS = ("half_pixel", "half_pixel_symmetric", "pytorch_half_pixel", "align_corners",
              "asymmetric", "tf_crop_and_resize")


class Spec:
    """The attributes of one Resize/Upsample node, with spec defaults."""

    def __init__(self, node, opset: int):
        attrs = node.attrs
        self.mode = attrs.get("mode", "nearest")
        legacy = node.op == "Upsample" or opset < 11
        self.transform = "asymmetric" if legacy else attrs.get(
            "coordinate_transformation_mode", "half_pixel")
        self.nearest_mode = "floor" if legacy else attrs.get("nearest_mode",
                                                             "round_prefer_floor")
        self.cubic_a = float(attrs.get("cubic_coeff_a", -0.75))
        self.exclude_outside = bool(attrs.get("exclude_outside", 0))
        self.extrapolation = float(attrs.get("extrapolation_value", 0.0))
        self.antialias = bool(attrs.get("antialias", 0))
        self.policy = attrs.get("keep_aspect_ratio_policy", "stretch")
        if self.mode == "bilinear":     # Upsample-7's spelling
            self.mode = "linear"
        if self.mode not in MODES or self.transform not in TRANSFORMS:
            raise UnsupportedOpError(f"{node.label()}: mode {self.mode!r} with "
                                     f"coordinate_transformation_mode {self.transform!r}")


def _inputs(ctx, node, rank: int) -> tuple:
    """(scales, sizes, roi, axes): per-axis lists, None where not given."""
    if node.op == "Upsample" and ctx.opset < 9:
        return list(node.attrs["scales"]), None, None, list(range(rank))
    if node.op == "Upsample" or ctx.opset < 11:
        return [float(s) for s in const_input(ctx, node, 1, "scales").reshape(-1)], None, \
            None, list(range(rank))
    roi = const_input(ctx, node, 1, "roi")
    scales = const_input(ctx, node, 2, "scales")
    sizes = const_input(ctx, node, 3, "sizes")
    axes = node.attrs.get("axes")
    axes = list(range(rank)) if axes is None else [norm_axis(a, rank, node) for a in axes]
    scales = None if scales is None or scales.size == 0 else [float(s) for s in scales.reshape(-1)]
    sizes = None if sizes is None or sizes.size == 0 else [int(s) for s in sizes.reshape(-1)]
    roi = None if roi is None or roi.size == 0 else [float(r) for r in roi.reshape(-1)]
    if (scales is None) == (sizes is None):
        raise ValueError("Resize needs exactly one of scales and sizes")
    return scales, sizes, roi, axes


def output_geometry(spec: Spec, in_shape, scales, sizes, axes) -> tuple:
    """(output shape, per-axis scale used by the coordinate transformation)."""
    out, used = list(in_shape), [1.0] * len(in_shape)
    if len(scales or sizes) != len(axes):
        raise ValueError(f"{len(scales or sizes)} scales/sizes for {len(axes)} axes")
    if scales is not None:
        for axis, scale in zip(axes, scales):
            if scale <= 0:
                raise ValueError(f"scale {scale} must be positive")
            # in float32, as the scales are (and as onnxruntime rounds)
            out[axis] = int(np.floor(np.float32(in_shape[axis]) * np.float32(scale)))
            used[axis] = scale
        return out, used
    if spec.policy in ("not_larger", "not_smaller"):
        ratios = [size / in_shape[axis] for axis, size in zip(axes, sizes)]
        common = min(ratios) if spec.policy == "not_larger" else max(ratios)
        for axis in axes:
            out[axis] = int(math.floor(common * in_shape[axis] + 0.5))
            used[axis] = common
        return out, used
    for axis, size in zip(axes, sizes):
        out[axis] = size
        used[axis] = size / in_shape[axis] if in_shape[axis] else 1.0
    return out, used


def source_coords(spec: Spec, len_in: int, len_out: int, scale: float, roi) -> np.ndarray:
    """The input coordinate of every output position along one axis.

    Where the spec divides by the resized length, that is scale x len_in
    (not rounded), as in the ONNX definition."""
    x = np.arange(len_out, dtype=np.float64)
    resized = scale * len_in
    t = spec.transform
    if t == "half_pixel":
        return (x + 0.5) / scale - 0.5
    if t == "half_pixel_symmetric":
        adjust = len_out / (scale * len_in)
        center = len_in / 2
        return center * (1 - adjust) + (x + 0.5) / scale - 0.5
    if t == "pytorch_half_pixel":
        return (x + 0.5) / scale - 0.5 if resized > 1 else np.zeros(len_out)
    if t == "align_corners":
        return x * (len_in - 1) / (resized - 1) if resized > 1 else np.zeros(len_out)
    if t == "asymmetric":
        return x / scale
    start, end = roi
    if resized > 1:
        return start * (len_in - 1) + x * (end - start) * (len_in - 1) / (resized - 1)
    return np.full(len_out, 0.5 * (start + end) * (len_in - 1))


def nearest_table(spec: Spec, coords: np.ndarray, len_in: int) -> np.ndarray:
    frac = coords - np.floor(coords)
    if spec.nearest_mode == "round_prefer_floor":
        idx = np.where(frac == 0.5, np.floor(coords), np.round(coords))
    elif spec.nearest_mode == "round_prefer_ceil":
        idx = np.where(frac == 0.5, np.ceil(coords), np.round(coords))
    elif spec.nearest_mode == "floor":
        idx = np.floor(coords)
    elif spec.nearest_mode == "ceil":
        idx = np.ceil(coords)
    else:
        raise ValueError(f"nearest_mode {spec.nearest_mode!r}")
    return np.clip(idx, 0, len_in - 1).astype(np.int32)


def _cubic(d: np.ndarray, a: float) -> np.ndarray:
    """The cubic convolution kernel (Keys) at distances d."""
    d = np.abs(d)
    near = ((a + 2) * d - (a + 3)) * d * d + 1
    far = ((a * d - 5 * a) * d + 8 * a) * d - 4 * a
    return np.where(d <= 1, near, np.where(d < 2, far, 0.0))


def filter_table(spec: Spec, coords: np.ndarray, len_in: int, scale: float) -> tuple:
    """(indices, weights) of shape [len_out, taps] for linear/cubic."""
    support = 1.0 if spec.mode == "linear" else 2.0
    stretch = min(scale, 1.0) if spec.antialias else 1.0
    reach = support / stretch
    first = np.floor(coords) - math.ceil(reach) + 1
    taps = 2 * math.ceil(reach)
    pos = first[:, None] + np.arange(taps)[None, :]
    dist = (pos - coords[:, None]) * stretch
    if spec.mode == "linear":
        weights = np.clip(1.0 - np.abs(dist), 0.0, None)
    else:
        weights = _cubic(dist, spec.cubic_a)
    if spec.exclude_outside:
        weights = np.where((pos < 0) | (pos > len_in - 1), 0.0, weights)
    if spec.antialias or spec.exclude_outside:
        total = weights.sum(axis=1, keepdims=True)
        weights = weights / np.where(total == 0, 1.0, total)
    idx = np.clip(pos, 0, len_in - 1).astype(np.int32)
    return idx, weights.astype(np.float32)


def _outside(spec: Spec, coords: np.ndarray, len_in: int) -> np.ndarray:
    if spec.transform != "tf_crop_and_resize":
        return np.zeros(len(coords), bool)
    return (coords < 0) | (coords > len_in - 1)


def _table_weight(ctx, array: np.ndarray):
    key = ("resize_table", hashlib.sha1(array.tobytes()).hexdigest(), array.shape)
    return ctx.weight(array, key)


def _axis_pass(ctx, spec, x, src, dst, shape, axis, len_out, scale, roi) -> bool:
    """One launch resampling `axis` of src (shape, x's dtype) into dst;
    False if that axis maps identically."""
    len_in = shape[axis]
    coords = source_coords(spec, len_in, len_out, scale, roi)
    outside = _outside(spec, coords, len_in)
    inner = int(np.prod(shape[axis + 1:], dtype=np.int64))
    outer = int(np.prod(shape[:axis], dtype=np.int64))
    gsize = (inner, len_out, outer)
    if spec.mode == "nearest":
        idx = np.where(outside, -1, nearest_table(spec, coords, len_in)).astype(np.int32)
        if len_out == len_in and np.array_equal(idx, np.arange(len_in)):
            return False
        bits = np.asarray(spec.extrapolation).astype(ctx.storage_dtype(x.dtype)).reshape(1)
        raw = bits.view(np.dtype(f"u{bits.itemsize}"))[0]
        ctx.launch("resize", gsize,
                   [src, dst, _table_weight(ctx, idx), np.int32(inner), np.int32(len_in),
                    np.int32(len_out), np.uint64(raw)],
                   {"T": RAW_TYPES[ctx.itemsize(x)]}, entry="resize_nearest")
        return True
    idx, weights = filter_table(spec, coords, len_in, scale)
    idx[outside, 0] = -1
    identity = len_out == len_in and not outside.any() and np.allclose(
        (weights * (idx == np.arange(len_in)[:, None])).sum(axis=1), 1.0, atol=0, rtol=0)
    if identity:
        return False
    ctx.launch("resize", gsize,
               [src, dst, _table_weight(ctx, idx), _table_weight(ctx, weights.view(np.int32)),
                np.int32(inner), np.int32(len_in), np.int32(len_out),
                np.float32(spec.extrapolation)],
               {"TAPS": idx.shape[1]}, entry="resize_axis")
    return True


def lower_resize(ctx, node) -> None:
    x = node.inputs[0]
    shape = list(ctx.shape(x))
    spec = Spec(node, ctx.opset)
    if spec.mode != "nearest" and x.dtype.kind != "f":
        raise UnsupportedOpError(f"{node.label()}: {spec.mode} Resize of {x.dtype} tensors "
                                 f"(only nearest works on integer tensors)")
    scales, sizes, roi, axes = _inputs(ctx, node, len(shape))
    out_shape, used = output_geometry(spec, shape, scales, sizes, axes)
    out = ctx.output(node.outputs[0], out_shape, x.dtype)
    if spec.transform == "tf_crop_and_resize":
        if roi is None:
            raise ValueError("tf_crop_and_resize needs roi")
        n = len(roi) // 2
        full = [(0.0, 1.0)] * len(shape)
        for i, axis in enumerate(axes if n == len(axes) else range(len(shape))):
            full[axis] = (roi[i], roi[n + i])
        roi = full
    todo = [a for a in range(len(shape)) if out_shape[a] != shape[a] or used[a] != 1.0
            or spec.transform == "tf_crop_and_resize"]
    todo.sort(key=lambda a: out_shape[a] / max(shape[a], 1))
    _run_passes(ctx, spec, x, out, todo, used, roi)


def _run_passes(ctx, spec, x, out, todo: list, used: list, roi) -> None:
    """One pass per axis in todo, through scratch buffers, ending in out."""
    out_shape = ctx.shape(out)
    src, current, wrote = x, list(ctx.shape(x)), False
    for n, axis in enumerate(todo):
        nxt = current.copy()
        nxt[axis] = out_shape[axis]
        last = n == len(todo) - 1
        dst = out if last else ctx.scratch(int(np.prod(nxt, dtype=np.int64)) * ctx.itemsize(x))
        if _axis_pass(ctx, spec, x, src, dst, current, axis, out_shape[axis], used[axis],
                      roi[axis] if roi else None):
            src, current, wrote = dst, nxt, last
    if not wrote:
        strides = contiguous_strides(out_shape)
        emit_strided(ctx, out, out_shape, strides, 0, [(src, strides, 0)], raw=True)


op("Resize", shape_inputs=(1, 2, 3))(lower_resize)
op("Upsample", shape_inputs=(1,))(lower_resize)
