"""Resize and Upsample against the reference: every mode, coordinate
transformation and nearest rounding, scales or sizes, axes, aspect-ratio
policy and antialias, in both storage modes (and nearest on uint8); GridSample
in every mode and padding, 2-D and 3-D; AffineGrid."""
from __future__ import annotations

import numpy as np
import pytest
from onnx import helper

from test_gather import check, rand, RNG

EMPTY = np.zeros(0, np.float32)


def resize(device, precision, x, attrs, scales=None, sizes=None, roi=None, opset=19):
    inits = {"roi": EMPTY if roi is None else np.asarray(roi, np.float32),
             "scales": EMPTY if scales is None else np.asarray(scales, np.float32)}
    names = ["x", "roi", "scales"]
    if sizes is not None:
        inits["sizes"] = np.asarray(sizes, np.int64)
        names.append("sizes")
    node = helper.make_node("Resize", names, ["y"], **attrs)
    return check(device, precision, [node], {"x": x}, inits, opset=opset)


TRANSFORMS = ["half_pixel", "pytorch_half_pixel", "align_corners", "asymmetric",
              "half_pixel_symmetric"]


@pytest.mark.parametrize("mode", ["nearest", "linear", "cubic"])
@pytest.mark.parametrize("transform", TRANSFORMS)
def test_resize_scales(device, precision, mode, transform):
    # in x scale is a whole number: where the spec divides by the resized
    # length, onnxruntime uses the rounded one and onnx.reference the exact one
    x = rand(1, 3, 5, 15)
    resize(device, precision, x, {"mode": mode, "coordinate_transformation_mode": transform},
           scales=[1, 1, 2.6, 0.6])


@pytest.mark.parametrize("nearest_mode", ["round_prefer_floor", "round_prefer_ceil",
                                          "floor", "ceil"])
def test_resize_nearest_sizes(device, precision, nearest_mode):
    resize(device, precision, rand(2, 3, 7, 5), {"mode": "nearest", "nearest_mode": nearest_mode},
           sizes=[2, 3, 13, 3])


def test_resize_cubic_exclude_outside_and_tf_crop(device, precision):
    x = rand(1, 1, 13, 7)
    resize(device, precision, x, {"mode": "cubic", "cubic_coeff_a": -0.5,
                                  "exclude_outside": 1}, scales=[1, 1, 0.5, 1.7])
    resize(device, precision, x, {"mode": "linear", "extrapolation_value": 3.0,
                                  "coordinate_transformation_mode": "tf_crop_and_resize"},
           sizes=[1, 1, 5, 9], roi=[0, 0, -0.2, 0.3, 1, 1, 0.8, 1.4])


@pytest.mark.parametrize("mode", ["linear", "cubic"])
def test_resize_antialias_axes_policy(device, precision, mode):
    x = rand(1, 2, 13, 17)
    resize(device, precision, x, {"mode": mode, "antialias": 1}, scales=[1, 1, 0.4, 0.7])
    resize(device, precision, x, {"mode": mode, "axes": [3, 2],
                                  "keep_aspect_ratio_policy": "not_larger"}, sizes=[9, 5])


def test_resize_nearest_uint8_bit_exact(device):
    x = RNG.integers(0, 255, size=(1, 3, 5, 7)).astype(np.uint8)
    got = resize(device, "fp32", x, {"mode": "nearest"}, scales=[1, 1, 2, 1.5])
    assert got[0].dtype == np.uint8


def test_upsample_and_opset10(device, precision):
    x = rand(1, 3, 5, 7)
    scales = {"s": np.array([1, 1, 2, 3], np.float32)}
    check(device, precision, [helper.make_node("Upsample", ["x", "s"], ["y"], mode="linear")],
          {"x": x}, scales, opset=9)
    check(device, precision, [helper.make_node("Resize", ["x", "s"], ["y"], mode="nearest")],
          {"x": x}, scales, opset=10)


@pytest.mark.parametrize("mode", ["bilinear", "nearest", "bicubic"])
@pytest.mark.parametrize("padding", ["zeros", "border", "reflection"])
def test_grid_sample(device, precision, mode, padding):
    # some outside [-1, 1]; fp16-exact, so half storage samples the same points
    grid = (RNG.random((2, 5, 7, 2)) * 2.6 - 1.3).astype(np.float16).astype(np.float32)
    node = helper.make_node("GridSample", ["x", "g"], ["y"], mode=mode, padding_mode=padding,
                            align_corners=int(padding == "border"))
    check(device, precision, [node], {"x": rand(2, 3, 6, 13), "g": grid}, opset=16)


def test_grid_sample_volumetric(device, precision):
    grid = (RNG.random((1, 3, 4, 5, 3)) * 2.2 - 1.1).astype(np.float16).astype(np.float32)
    node = helper.make_node("GridSample", ["x", "g"], ["y"], mode="linear")
    check(device, precision, [node], {"x": rand(1, 2, 5, 6, 7), "g": grid}, opset=20)


@pytest.mark.parametrize("size", [(2, 3, 5, 13), (1, 2, 3, 4, 5)])
@pytest.mark.parametrize("align", [0, 1])
def test_affine_grid(device, precision, size, align):
    dims = len(size) - 2
    theta = rand(size[0], dims, dims + 1)
    check(device, precision, [helper.make_node("AffineGrid", ["t", "s"], ["y"],
                                               align_corners=align)],
          {"t": theta}, {"s": np.array(size, np.int64)}, opset=20)
