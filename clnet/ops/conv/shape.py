"""The geometry of a convolution or pooling window, worked out once per node.

``Window`` is ONNX's sliding-window arithmetic over 1 to 3 spatial dims
(pads, auto_pad, strides, dilations); the pools use it as it is.
``ConvShape`` is one Conv seen as a 2-D convolution (a 1-D one has H = 1):
every conv algorithm and the quantized convs read it, and it makes their
kernels' int4 window arguments.
"""
from __future__ import annotations

from dataclasses import dataclass

from ...errors import ModelError, UnsupportedOpError
from .._util import int_vec


@dataclass(frozen=True)
class Window:
    """A sliding window over the spatial dims of an input."""
    kernel: tuple
    strides: tuple
    dilations: tuple
    begin: tuple        # pads before, per spatial dim
    end: tuple          # pads after
    out: tuple          # output spatial dims

    @classmethod
    def of(cls, node, spatial, kernel) -> "Window":
        """The window of `kernel` over input dims `spatial` per the node's
        strides, dilations, pads and auto_pad attributes."""
        nd = len(spatial)
        strides = list(node.attrs.get("strides") or [1] * nd)
        dilations = list(node.attrs.get("dilations") or [1] * nd)
        pads = list(node.attrs.get("pads") or [0] * (2 * nd))
        auto_pad = node.attrs.get("auto_pad", "NOTSET")
        if isinstance(auto_pad, bytes):
            auto_pad = auto_pad.decode()
        _check_window(node, nd, kernel, strides, dilations, pads)
        begin, end, out = pads[:nd], pads[nd:], []
        for i in range(nd):
            eff = (kernel[i] - 1) * dilations[i] + 1
            if auto_pad in ("SAME_UPPER", "SAME_LOWER"):
                o = -(-spatial[i] // strides[i])
                total = max((o - 1) * strides[i] + eff - spatial[i], 0)
                small = total // 2
                begin[i], end[i] = ((small, total - small) if auto_pad == "SAME_UPPER"
                                    else (total - small, small))
            elif auto_pad == "VALID":
                begin[i] = end[i] = 0
            out.append((spatial[i] + begin[i] + end[i] - eff) // strides[i] + 1)
        return cls(tuple(kernel), tuple(strides), tuple(dilations), tuple(begin), tuple(end),
                   tuple(out))


def _check_window(node, nd: int, kernel, strides, dilations, pads) -> None:
    """The spec's limits, before any size is computed from them: a negative
    pad once let a pool write outside its output buffer."""
    for name, values, length, low in (("kernel_shape", kernel, nd, 1), ("strides", strides, nd, 1),
                                      ("dilations", dilations, nd, 1), ("pads", pads, 2 * nd, 0)):
        if len(values) != length or any(int(v) < low for v in values):
            raise ModelError(f"{node.label()}: attribute {name}={list(values)} must hold "
                             f"{length} values of at least {low} for {nd} spatial dims")


@dataclass(frozen=True)
class ConvShape:
    """One convolution as 2-D: a 1-D conv has H = OH = 1 and a 1-row kernel."""
    N: int              # images
    C: int              # input channels
    H: int              # input rows
    W: int              # input columns
    M: int              # output channels
    OH: int             # output rows
    OW: int             # output columns
    kh: int             # kernel rows
    kw: int             # kernel columns
    sy: int             # stride along rows
    sx: int             # stride along columns
    pad_y: int          # padding before the first row
    pad_x: int          # padding before the first column
    dy: int             # dilation along rows
    dx: int             # dilation along columns
    group: int
    out_shape: tuple    # the output tensor's shape (rank of the input)

    @classmethod
    def of(cls, node, x_shape, w_shape) -> "ConvShape":
        """The ONNX Conv shape rule, shared by float and integer convolutions."""
        nd = len(x_shape) - 2
        if nd not in (1, 2):
            raise UnsupportedOpError(f"{node.label()}: {nd}-D {node.op} is not supported yet")
        group = node.attrs.get("group", 1)
        N, C = x_shape[:2]
        M = w_shape[0]
        if C != w_shape[1] * group or M % group:
            raise ValueError(f"{node.op} channels: input {x_shape}, weights {w_shape}, "
                             f"group {group}")
        window = Window.of(node, x_shape[2:], node.attrs.get("kernel_shape") or w_shape[2:])
        if any(o <= 0 for o in window.out):
            raise ValueError(f"{node.op} output would be empty: input {x_shape}, "
                             f"kernel {list(window.kernel)}")
        if nd == 1:
            (kw,), (sx,), (pad_x,), (dx,) = (window.kernel, window.strides, window.begin,
                                             window.dilations)
            H, W, OH, OW, kh, sy, pad_y, dy = 1, x_shape[2], 1, window.out[0], 1, 1, 0, 1
        else:
            (H, W), (OH, OW) = x_shape[2:], window.out
            (kh, kw), (sy, sx) = window.kernel, window.strides
            (pad_y, pad_x), (dy, dx) = window.begin, window.dilations
        return cls(N, C, H, W, M, OH, OW, kh, kw, sy, sx, pad_y, pad_x, dy, dx, group,
                   (N, M, *window.out))

    @property
    def Cg(self) -> int:
        """Input channels per group."""
        return self.C // self.group

    @property
    def Mg(self) -> int:
        """Output channels per group."""
        return self.M // self.group

    @property
    def taps(self) -> int:
        return self.kh * self.kw

    @property
    def pixels(self) -> int:
        """Output pixels per image and channel."""
        return self.OH * self.OW

    @property
    def unit_stride_no_pad(self) -> bool:
        return self.sy == self.sx == 1 and self.pad_y == self.pad_x == 0

    def window_args(self) -> tuple:
        """The int4 arguments (kh, kw, sy, sx) and (pad_y, pad_x, dy, dx) of
        the im2col, depthwise and qim2col kernels."""
        return (int_vec((self.kh, self.kw, self.sy, self.sx)),
                int_vec((self.pad_y, self.pad_x, self.dy, self.dx)))
