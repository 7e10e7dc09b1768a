"""GridSample (opset 16 and 20: nearest, (bi/tri)linear, bicubic; zeros,
border and reflection padding; align_corners; 2-D and 3-D) and AffineGrid
on kernels_cl/gridsample.cl."""
from __future__ import annotations

import numpy as np

from ..errors import UnsupportedOpError
from ._util import const_input, int_vec, require_float
from .registry import op

MODES = {"nearest": 0, "linear": 1, "bilinear": 1, "cubic": 2, "bicubic": 2}
PADDINGS = {"zeros": 0, "border": 1, "reflection": 2}


@op("GridSample")
def grid_sample(ctx, node, mode: str = "linear", padding_mode: str = "zeros"):
    x, grid = node.inputs[0], node.inputs[1]
    shape, g_shape = ctx.shape(x), ctx.shape(grid)
    nd = len(shape) - 2
    mode = node.attrs.get("mode", "bilinear" if ctx.opset < 20 else mode)
    padding = node.attrs.get("padding_mode", padding_mode)
    if mode not in MODES or padding not in PADDINGS or not 2 <= nd <= 3 \
            or (MODES[mode] == 2 and nd != 2):
        raise UnsupportedOpError(f"{node.label()}: GridSample mode {mode!r}, padding "
                                 f"{padding!r} on a {nd}-D input (opset {ctx.opset})")
    require_float(ctx, node, x, grid)
    if len(g_shape) != nd + 2 or g_shape[0] != shape[0] or g_shape[-1] != nd:
        raise ValueError(f"GridSample grid {g_shape} does not fit input {shape}")
    n, channels = shape[:2]
    out_sp = list(g_shape[1:-1])
    out = ctx.output(node.outputs[0], (n, channels, *out_sp), x.dtype)
    in_d, in_h, in_w = ([1] + list(shape[2:]))[-3:]
    o_d, o_h, o_w = ([1] + out_sp)[-3:]
    defines = {"MODE": MODES[mode], "PADDING": PADDINGS[padding],
               "ALIGN_CORNERS": int(node.attrs.get("align_corners", 0))}
    ctx.launch("gridsample", (o_w, o_d * o_h, n),
               [x, grid, out, int_vec((in_d, in_h, in_w, channels)),
                int_vec((o_d, o_h, o_w, 0)), np.int32(nd)], defines, entry="grid_sample")


@op("AffineGrid", shape_inputs=(1,))
def affine_grid(ctx, node, align_corners: int = 0):
    theta = node.inputs[0]
    size = [int(s) for s in const_input(ctx, node, 1, "size").reshape(-1)]
    dims = len(size) - 2
    if dims not in (2, 3) or ctx.shape(theta) != (size[0], dims, dims + 1):
        raise ValueError(f"AffineGrid theta {ctx.shape(theta)} does not fit size {size}")
    spatial = ([1] + size[2:])[-3:]
    out = ctx.output(node.outputs[0], (size[0], *size[2:], dims), theta.dtype)
    ctx.launch("gridsample", (spatial[2], spatial[0] * spatial[1], size[0]),
               [theta, out, int_vec((*spatial, dims))],
               {"ALIGN_CORNERS": int(node.attrs.get("align_corners", align_corners))},
               entry="affine_grid")
