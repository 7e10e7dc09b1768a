"""Convolutions (im2col panels + gemm.cl, Winograd, depthwise.cl) against onnxruntime.

Odd sizes, strides, dilations, groups, 1-D, and the fused epilogue
(bias + activation + residual), in fp32 and fp16 storage, under the
default and a non-default set of GEMM parameters.
"""
import numpy as np
import pytest
from onnx import TensorProto, helper, numpy_helper

from conftest import assert_close, reference, run_both
from test_gemm import run_forced

CASES = [
    # (N, C, H, W), (M, C/group, kh, kw), attrs
    ((1, 3, 13, 13), (5, 3, 3, 3), {"pads": [1, 1, 1, 1]}),
    ((2, 4, 13, 11), (7, 4, 3, 3), {"strides": [2, 2], "pads": [1, 0, 1, 2]}),
    ((1, 6, 9, 9), (11, 6, 1, 1), {}),
    ((1, 8, 7, 13), (13, 8, 1, 1), {"strides": [2, 1]}),
    ((1, 6, 11, 11), (9, 2, 3, 3), {"group": 3, "pads": [1, 1, 1, 1], "dilations": [2, 2]}),
    ((1, 5, 13, 13), (5, 1, 3, 3), {"group": 5, "pads": [1, 1, 1, 1]}),
    ((1, 3, 127), (4, 3, 5), {"pads": [2, 2]}),
    # rows wide enough for im2col's vector interior path, stride 1 and 2
    ((1, 3, 6, 75), (4, 3, 3, 3), {"pads": [1, 1, 1, 1]}),
    ((1, 2, 9, 80), (5, 2, 7, 7), {"strides": [2, 2], "pads": [3, 3, 3, 3]}),
    ((1, 2, 5, 70), (3, 2, 3, 3), {"strides": [1, 2], "pads": [0, 1, 0, 1],
                                   "dilations": [1, 2]}),
    # depthwise rows wide enough for the vector interior path, stride 1 and 2
    ((1, 3, 5, 37), (3, 1, 3, 3), {"group": 3, "pads": [1, 1, 1, 1]}),
    ((1, 5, 9, 41), (5, 1, 3, 3), {"group": 5, "strides": [2, 2], "pads": [1, 1, 1, 1]}),
    ((1, 4, 7, 75), (4, 1, 3, 3), {"group": 4, "strides": [2, 2], "pads": [1, 1, 1, 1]}),
    # narrow depthwise maps (padded, phase-split copy): widths 7, 16, 32,
    # strides 1-3, dilation, a channel multiplier, 5x5, uneven pads
    ((2, 6, 7, 7), (6, 1, 3, 3), {"group": 6, "pads": [1, 1, 1, 1]}),
    ((1, 4, 16, 16), (8, 1, 3, 3), {"group": 4, "pads": [1, 1, 1, 1]}),
    ((1, 3, 12, 32), (3, 1, 5, 5), {"group": 3, "pads": [2, 1, 2, 3]}),
    ((1, 5, 15, 29), (5, 1, 3, 3), {"group": 5, "strides": [2, 3], "pads": [0, 1, 1, 0]}),
    ((1, 4, 11, 23), (8, 1, 3, 3), {"group": 4, "strides": [2, 2], "pads": [2, 2, 2, 2],
                                    "dilations": [2, 2]}),
    # MobileNet's 14x14 maps (every chunk reaches past its row), and batch 2
    # at stride 2, whose first and last rows take the checked path
    ((1, 24, 14, 14), (24, 1, 3, 3), {"group": 24, "pads": [1, 1, 1, 1]}),
    ((2, 8, 7, 9), (8, 1, 3, 3), {"group": 8, "strides": [2, 2], "pads": [1, 1, 1, 1]}),
]


def _conv_model(x_shape, w_shape, attrs, rng, act=None, residual=False):
    w = (rng.standard_normal(w_shape) / np.sqrt(np.prod(w_shape[1:]))).astype(np.float32)
    b = rng.standard_normal(w_shape[0]).astype(np.float32)
    nodes = [helper.make_node("Conv", ["x", "w", "b"], ["c"],
                              kernel_shape=list(w_shape[2:]), **attrs)]
    inputs = [helper.make_tensor_value_info("x", TensorProto.FLOAT, list(x_shape))]
    last = "c"
    if residual:
        nodes.append(helper.make_node("Add", ["c", "r"], ["s"]))
        last = "s"
    if act:
        nodes.append(helper.make_node(act, [last], ["y"]))
        last = "y"
    graph = helper.make_graph(nodes, "conv", inputs + ([helper.make_tensor_value_info(
        "r", TensorProto.FLOAT, None)] if residual else []),
        [helper.make_tensor_value_info(last, TensorProto.FLOAT, None)],
        [numpy_helper.from_array(w, "w"), numpy_helper.from_array(b, "b")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    return model


@pytest.mark.parametrize("case", range(len(CASES)))
def test_conv_shapes(device, precision, case):
    x_shape, w_shape, attrs = CASES[case]
    rng = np.random.default_rng(case)
    model = _conv_model(x_shape, w_shape, attrs, rng, act="Relu")
    feeds = {"x": rng.standard_normal(x_shape).astype(np.float32)}
    got, want = run_both(model, feeds, device, precision)
    assert_close(got[0], want[0], precision)


def test_pointwise_conv_ignores_paired_panels(device):
    """A 1x1 conv's GEMM reads its input in place (row-major B): a tuning
    entry asking for paired packed panels (NP) must not apply there."""
    policy = {"gemm": {"TM": 2, "TN": 8, "VW": 8, "NP": 2}}
    rng = np.random.default_rng(5)
    x_shape, w_shape = (1, 6, 9, 9), (2, 6, 1, 1)
    model = _conv_model(x_shape, w_shape, {}, rng, act="Relu")
    feeds = {"x": rng.standard_normal(x_shape).astype(np.float32)}
    got, want = run_forced(model, feeds, device, policy)
    assert_close(got[0], want[0])


def test_pointwise_conv_large_input_walks_rows_first(device):
    """A 1x1 conv whose input (the GEMM's B, read in place) passes 1 MB walks
    the row tiles of a column first, with bias, residual and Relu."""
    import clnet

    rng = np.random.default_rng(6)
    x_shape, w_shape = (1, 96, 56, 57), (28, 96, 1, 1)
    model = _conv_model(x_shape, w_shape, {}, rng, act="Relu", residual=True)
    feeds = {"x": rng.standard_normal(x_shape).astype(np.float32),
             "r": rng.standard_normal((1, 28, 56, 57)).astype(np.float32)}
    session = clnet.InferenceSession(model.SerializeToString(), device=device)
    got = session.run(None, feeds)
    (gemm,) = [l for l in session.last_plan.launches if l.entry == "gemm"]
    assert dict(gemm.defines).get("M_FIRST") and dict(gemm.defines).get("B_ROWMAJOR")
    assert_close(got[0], reference(model, feeds)[0])


@pytest.mark.parametrize("params", [{"TM": 4, "TN": 8, "VW": 8, "M_FIRST": 1},
                                    {"TM": 5, "TN": 16, "VW": 4, "KSPLIT": 2}])
def test_conv_residual_other_params(device, params):
    """Conv + bias + residual Add + Relu in one epilogue, with forced tiles."""
    rng = np.random.default_rng(11)
    x_shape, w_shape = (1, 7, 13, 13), (7, 7, 3, 3)
    model = _conv_model(x_shape, w_shape, {"pads": [1, 1, 1, 1]}, rng, act="Relu",
                        residual=True)
    feeds = {"x": rng.standard_normal(x_shape).astype(np.float32),
             "r": rng.standard_normal((1, 7, 13, 13)).astype(np.float32)}
    got, want = run_forced(model, feeds, device, {"gemm": params})
    assert_close(got[0], want[0])


WINOGRAD_CASES = [
    # (N, C, H, W), M, pads: odd sizes, partial edge tiles, asymmetric and no padding
    ((1, 16, 13, 11), 16, [1, 1, 1, 1]),
    ((2, 17, 9, 14), 33, [0, 1, 2, 0]),
    ((1, 24, 12, 12), 19, [0, 0, 0, 0]),
    ((3, 32, 7, 7), 24, [1, 1, 1, 1]),
    # wider rows (winograd_input_rows on CPUs: 10 / 19 tiles across, two
    # blocks of tile rows per image), several 16-tile chunks per row, one
    # tile row per work-item
    ((2, 8, 22, 37), 12, [1, 2, 0, 1]),
    ((1, 4, 9, 70), 5, [1, 1, 1, 1]),
]


@pytest.mark.parametrize("case", range(len(WINOGRAD_CASES)))
@pytest.mark.parametrize("epilogue", ["relu", "residual", "none", "LeakyRelu", "Sigmoid"])
@pytest.mark.parametrize("variant", ["winograd4x4", "winograd2x2"])
def test_winograd_against_reference(device, case, epilogue, variant, rows=None):
    """Winograd F(4x4, 3x3) and F(2x2, 3x3) (forced) with bias, residual Add
    and activation."""
    x_shape, m, pads = WINOGRAD_CASES[case]
    rng = np.random.default_rng(20 + case)
    act = {"relu": "Relu", "residual": None, "none": None}.get(epilogue, epilogue)
    model = _conv_model(x_shape, (m, x_shape[1], 3, 3), {"pads": pads}, rng, act=act,
                        residual=epilogue == "residual")
    oh, ow = x_shape[2] + pads[0] + pads[2] - 2, x_shape[3] + pads[1] + pads[3] - 2
    feeds = {"x": rng.standard_normal(x_shape).astype(np.float32)}
    if epilogue == "residual":
        feeds["r"] = rng.standard_normal((x_shape[0], m, oh, ow)).astype(np.float32)
    import clnet
    from clnet.policy import KernelPolicy
    policy = {"conv_algorithm": variant, "winograd_rows": rows}
    session = clnet.InferenceSession(model.SerializeToString(), device=device, policy=policy)
    got = session.run(None, feeds)
    launches = session.last_plan.launches
    tiles = [dict(l.defines)["WINO_M"] for l in launches
             if l.entry.startswith("winograd_output")]
    assert tiles == [int(variant[-1])]
    across = -(-ow // tiles[0])
    rows = "_rows" if KernelPolicy(session.device, policy).winograd_rows(across) else ""
    assert [l.entry for l in launches if l.entry.startswith("winograd")] == \
        ["winograd_input" + rows, "winograd_output" + rows]
    assert_close(got[0], reference(model, feeds)[0])


@pytest.mark.parametrize("case", [0, 1, 3, 4, 5])
@pytest.mark.parametrize("variant", ["winograd4x4", "winograd2x2"])
def test_winograd_row_kernels_on_any_device(device, case, variant):
    """The CPU transforms (vectors along tile rows) on whatever device runs
    the tests, so that Oclgrind checks their edge loads, stores and spills:
    rows of 2 to 35 tiles."""
    test_winograd_against_reference(device, case, "residual", variant, rows=True)


@pytest.mark.parametrize("tile", [4, 2])
def test_winograd_filter_transform_is_packed_g_w_gt(tile):
    """The load-time filter transform equals G w G^T per filter (float64),
    laid out as gemm.cl's packed A: [position][M panel][C][lane], zero lanes
    past M."""
    from clnet.ops.conv.winograd import G_MATRICES, filter_transform

    m, c, tn = 21, 5, 8
    w = np.random.default_rng(3).standard_normal((m, c, 3, 3)).astype(np.float32)
    g = G_MATRICES[tile]
    want = np.einsum("ik,mckl,jl->ijcm", g, w.astype(np.float64), g).reshape(-1, c, m)
    got = filter_transform(w, tile, tn)
    assert got.shape == ((tile + 2) ** 2, 3, c, tn) and got.dtype == np.float32
    unpacked = got.transpose(0, 2, 1, 3).reshape(-1, c, 3 * tn)
    np.testing.assert_allclose(unpacked[:, :, :m], want, rtol=1e-6, atol=1e-6)
    assert not unpacked[:, :, m:].any()


DIRECT_CASES = [
    # (x shape, w shape, attrs): few input channels, spatial kernels, strides
    ((1, 3, 29, 31), (16, 3, 7, 7), {"pads": [3, 3, 3, 3], "strides": [2, 2]}),   # stem
    ((2, 4, 17, 9), (12, 4, 3, 3), {"pads": [1, 0, 2, 1], "strides": [2, 2]}),    # OW <= 8
    ((1, 3, 20, 40), (8, 3, 3, 5), {"pads": [0, 2, 1, 2]}),                       # stride 1
    ((1, 16, 23, 37), (24, 16, 3, 3), {"pads": [1, 1, 1, 1], "strides": [3, 2]}),
    ((1, 2, 12, 50), (9, 2, 5, 4), {"strides": [1, 4]}),
]


@pytest.mark.parametrize("case", range(len(DIRECT_CASES)))
@pytest.mark.parametrize("epilogue", ["relu", "residual", "Sigmoid"])
def test_direct_conv_against_reference(device, case, epilogue):
    """conv_direct.cl (few input channels, strided or large kernels): odd
    sizes, partial pixel blocks and channel tiles, bias, residual Add and
    activation fused."""
    x_shape, w_shape, attrs = DIRECT_CASES[case]
    rng = np.random.default_rng(40 + case)
    act = {"relu": "Relu", "residual": None}.get(epilogue, epilogue)
    model = _conv_model(x_shape, w_shape, attrs, rng, act=act, residual=epilogue == "residual")
    feeds = {"x": rng.standard_normal(x_shape).astype(np.float32)}
    import clnet
    session = clnet.InferenceSession(model.SerializeToString(), device=device)
    if epilogue == "residual":   # shaped like the conv's output
        plain = _conv_model(x_shape, w_shape, attrs, np.random.default_rng(0))
        feeds["r"] = rng.standard_normal(reference(plain, feeds)[0].shape).astype(np.float32)
    got = session.run(None, feeds)
    entries = [l.entry for l in session.last_plan.launches]
    assert "conv_direct" in entries
    assert_close(got[0], reference(model, feeds)[0])


@pytest.mark.parametrize("width", [4, 8, 16])   # the keys of conv.direct.DIRECT_TILE
@pytest.mark.parametrize("case", [0, 1, 3])
def test_direct_conv_tile_of_every_vector_width(device, case, width):
    """conv_direct with each vector width's tile (DIRECT_TILE: 8 x 3 x 16
    for AVX-512, 6 x 1 x 16 for AVX2, 4 x 1 x 8), whichever this device
    would pick: partial channel tiles (16 or 12 channels in tiles of 6),
    one or three rows per work-item."""
    import clnet
    from clnet.ops.conv.direct import DIRECT_TILE

    x_shape, w_shape, attrs = DIRECT_CASES[case]
    rng = np.random.default_rng(50 + case)
    model = _conv_model(x_shape, w_shape, attrs, rng, act="Relu")
    feeds = {"x": rng.standard_normal(x_shape).astype(np.float32)}
    session = clnet.InferenceSession(model.SerializeToString(), device=device,
                                     policy={"direct_tile": width})
    got = session.run(None, feeds)
    (launch,) = [l for l in session.last_plan.launches if l.entry == "conv_direct"]
    assert dict(launch.defines)["TM"] == DIRECT_TILE[width][0]
    assert_close(got[0], reference(model, feeds)[0])


OC_CASES = [
    # (x shape, w shape, attrs): conv_oc, many input channels
    ((1, 64, 23, 30), (40, 64, 3, 3), {"pads": [1, 1, 1, 1], "strides": [2, 2]}),
    ((2, 24, 9, 17), (33, 24, 3, 3), {"pads": [1, 0, 2, 1]}),                     # OW % OP
    ((1, 20, 7, 7), (70, 20, 3, 3), {"pads": [1, 1, 1, 1]}),
    ((1, 17, 15, 26), (16, 17, 5, 2), {"pads": [2, 0, 2, 1], "strides": [3, 4]}),
    ((1, 20, 5, 12), (16, 20, 3, 3), {"pads": [1, 1, 1, 1]}),                     # 2 blocks
    # right padding that reaches the blocks between the edges (checked taps)
    ((1, 20, 6, 15), (18, 20, 3, 3), {"pads": [1, 0, 1, 2]}),
]


@pytest.mark.parametrize("case", range(len(OC_CASES)))
@pytest.mark.parametrize("epilogue", ["relu", "residual", "Sigmoid"])
def test_direct_conv_oc_against_reference(device, case, epilogue):
    """conv_direct.cl conv_oc (channels in vector lanes; forced, so that it
    runs on any device): output channels not a multiple of the vector,
    partial pixel blocks, strides, uneven pads, batch 2, with bias, residual
    Add and activation fused."""
    x_shape, w_shape, attrs = OC_CASES[case]
    rng = np.random.default_rng(60 + case)
    act = {"relu": "Relu", "residual": None}.get(epilogue, epilogue)
    model = _conv_model(x_shape, w_shape, attrs, rng, act=act, residual=epilogue == "residual")
    feeds = {"x": rng.standard_normal(x_shape).astype(np.float32)}
    if epilogue == "residual":
        plain = _conv_model(x_shape, w_shape, attrs, np.random.default_rng(0))
        feeds["r"] = rng.standard_normal(reference(plain, feeds)[0].shape).astype(np.float32)
    import clnet
    session = clnet.InferenceSession(model.SerializeToString(), device=device,
                                     policy={"conv_algorithm": "direct"})
    got = session.run(None, feeds)
    assert "conv_oc" in [l.entry for l in session.last_plan.launches]
    assert_close(got[0], reference(model, feeds)[0])


def _algorithm(model, device, precision="fp32"):
    import clnet
    session = clnet.InferenceSession(model.SerializeToString(), device=device,
                                     precision=precision)
    for launch in session.last_plan.launches:
        if launch.entry.startswith("winograd_output"):
            tile = dict(launch.defines)["WINO_M"]
            return f"winograd{tile}x{tile}"
        if launch.entry in ("conv_direct", "conv_oc"):
            return launch.entry
    return "im2col"


def test_conv_algorithm_choice(device, tmp_path, monkeypatch):
    """The rule picks F(4x4) for wide maps (F(2x2) where F(4x4)'s filters
    would pass 4 MB, on a CPU with 16-wide vectors); on 7x7 maps conv_oc on a CPU with
    16-wide vectors, else F(2x2); im2col for tiny maps and fp16
    storage; a direct kernel for strided convs (conv_direct up to 16 input
    channels, conv_oc above on such a CPU); a tuned conv3x3 entry overrides
    the rule."""
    from clnet.tuning import vector_width
    from clnet import tuning

    monkeypatch.setenv("CLNET_CACHE_DIR", str(tmp_path))
    tuning.reload()
    rng = np.random.default_rng(5)
    pads = {"pads": [1, 1, 1, 1]}
    wide = _conv_model((1, 16, 28, 28), (16, 16, 3, 3), pads, rng)
    small = _conv_model((1, 16, 7, 7), (16, 16, 3, 3), pads, rng)
    tiny = _conv_model((1, 16, 4, 4), (16, 16, 3, 3), pads, rng)
    strided = _conv_model((1, 16, 28, 28), (16, 16, 3, 3), dict(pads, strides=[2, 2]), rng)
    small_wide_c = _conv_model((1, 32, 7, 7), (16, 32, 3, 3), pads, rng)
    strided_wide_c = _conv_model((1, 32, 28, 28), (16, 32, 3, 3), dict(pads, strides=[2, 2]),
                                 rng)
    import clnet
    dev = clnet.InferenceSession(wide.SerializeToString(), device=device).device
    oc = dev.type == "CPU" and vector_width(dev) == 16
    assert _algorithm(wide, device) == "winograd4x4"
    assert _algorithm(wide, device, "fp16") == "im2col"
    wide_many = _conv_model((1, 256, 14, 14), (256, 256, 3, 3), pads, rng)
    assert _algorithm(wide_many, device) == ("winograd2x2" if oc else "winograd4x4")
    assert _algorithm(small, device) == "winograd2x2"
    assert _algorithm(small_wide_c, device) == ("conv_oc" if oc else "winograd2x2")
    assert _algorithm(tiny, device) == "im2col"
    assert _algorithm(strided, device) == "conv_direct"
    assert _algorithm(strided_wide_c, device) == ("conv_oc" if oc else "im2col")
    assert _algorithm(strided_wide_c, device, "fp16") == "im2col"
    tuning.save_tuning(device, tuning.CONV_ALGORITHM_KEY, [
        {"shape": (16, 28 * 28, 16 * 9), "params": {"ALGO": "im2col"}, "gflops": 1.0},
        {"shape": (16, 7 * 7, 16 * 9), "params": {"ALGO": "winograd4x4"}, "gflops": 1.0},
        {"shape": (16, 7 * 7, 32 * 9), "params": {"ALGO": "direct"}, "gflops": 1.0}])
    tuning.reload()
    assert _algorithm(wide, device) == "im2col"
    assert _algorithm(small, device) == "winograd4x4"
    assert _algorithm(small_wide_c, device) == "conv_oc"
    tuning.reload()


@pytest.mark.parametrize("x_shape,w_shape,attrs", [
    ((1, 3, 13, 13), (5, 3, 3, 3), {"pads": [1, 1, 1, 1], "strides": [2, 2]}),   # im2col
    ((1, 16, 20, 20), (16, 16, 3, 3), {"pads": [1, 1, 1, 1]}),                  # Winograd
    ((1, 5, 9, 41), (5, 1, 3, 3), {"group": 5, "pads": [1, 1, 1, 1]}),          # depthwise
])
def test_conv_then_erf_gelu_in_the_epilogue(device, precision, x_shape, w_shape, attrs):
    """The exporters' five-op GELU after a Conv becomes the conv's activation."""
    from test_gemm import _gelu_nodes

    rng = np.random.default_rng(17)
    w = (rng.standard_normal(w_shape) / np.sqrt(np.prod(w_shape[1:]))).astype(np.float32)
    gelu, consts, y = _gelu_nodes("c", "half-first")
    graph = helper.make_graph(
        [helper.make_node("Conv", ["x", "w"], ["c"], kernel_shape=list(w_shape[2:]), **attrs)]
        + gelu, "conv_gelu",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, list(x_shape))],
        [helper.make_tensor_value_info(y, TensorProto.FLOAT, None)],
        [numpy_helper.from_array(w, "w")] + consts)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    feeds = {"x": (rng.standard_normal(x_shape) * 2).astype(np.float32)}
    import clnet
    session = clnet.InferenceSession(model.SerializeToString(), device=device,
                                     precision=precision)
    got = session.run(None, feeds)
    assert not any(l.entry == "elementwise" for l in session.last_plan.launches)
    assert_close(got[0], reference(model, feeds)[0], precision)


CLIP_CASES = [
    # (x shape, w shape, attrs, launch expected): Conv + Clip(0, 6) fused
    ((1, 5, 9, 13), (7, 5, 1, 1), {}, "gemm"),                                   # 1x1: GEMM
    ((1, 3, 17, 19), (9, 3, 3, 3), {"pads": [1, 1, 1, 1], "strides": [2, 2]}, "conv_direct"),
    ((1, 6, 14, 14), (6, 1, 3, 3), {"group": 6, "pads": [1, 1, 1, 1]}, "depthwise"),
]


@pytest.mark.parametrize("case", range(len(CLIP_CASES)))
def test_conv_clip_fused(device, case):
    """Conv + Clip (Relu6, MobileNet's activation) runs as one launch, with
    values on both sides of both bounds; the epilogue's inline Clip must
    agree with the reference."""
    import clnet

    x_shape, w_shape, attrs, entry = CLIP_CASES[case]
    rng = np.random.default_rng(90 + case)
    w = (3 * rng.standard_normal(w_shape)).astype(np.float32)
    b = rng.standard_normal(w_shape[0]).astype(np.float32)
    nodes = [helper.make_node("Conv", ["x", "w", "b"], ["c"], kernel_shape=list(w_shape[2:]),
                              **attrs),
             helper.make_node("Clip", ["c", "lo", "hi"], ["y"])]
    inits = [numpy_helper.from_array(w, "w"), numpy_helper.from_array(b, "b"),
             numpy_helper.from_array(np.array(0.0, np.float32), "lo"),
             numpy_helper.from_array(np.array(6.0, np.float32), "hi")]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info(
        "x", TensorProto.FLOAT, list(x_shape))], [helper.make_tensor_value_info(
            "y", TensorProto.FLOAT, None)], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    feeds = {"x": rng.standard_normal(x_shape).astype(np.float32)}
    session = clnet.InferenceSession(model.SerializeToString(), device=device)
    got = session.run(None, feeds)[0]
    (launched,) = [l.entry for l in session.last_plan.launches if l.entry != "conv_phases"]
    assert launched.startswith(entry)     # depthwise or depthwise_plane
    want = reference(model, feeds)[0]
    assert (want == 0).any() and (want == 6).any() and ((want > 0) & (want < 6)).any()
    assert_close(got, want)


PLANE_CASES = [
    # depthwise convs whose output rows are as wide as the input's, on small
    # planes (depthwise_plane on CPUs): the tensor's first
    # and last channels take the checked path, the others the vector one
    ((1, 7, 13, 13), (7, 1, 3, 3), {"pads": [1, 1, 1, 1]}),
    ((3, 5, 7, 7), (5, 1, 3, 3), {"pads": [1, 1, 1, 1]}),                 # batch 3
    ((1, 4, 4, 4), (8, 1, 3, 3), {"pads": [1, 1, 1, 1]}),                 # 16 outputs, multiplier 2
    ((1, 6, 9, 11), (6, 1, 5, 5), {"pads": [0, 2, 0, 2]}),                # 5x5, OH < H
    ((1, 5, 10, 6), (5, 1, 3, 3), {"pads": [2, 0, 1, 2]}),                # uneven pads
    ((2, 9, 16, 16), (9, 1, 3, 3), {"pads": [1, 1, 1, 1]}),               # 256 outputs
    ((1, 3, 28, 28), (3, 1, 3, 3), {"pads": [1, 1, 1, 1]}),               # 784 outputs
    # the row kernel: larger planes (16 outputs per chunk on such CPUs, the
    # last chunk of a row shifted), output rows narrower than the input's
    ((1, 4, 30, 41), (4, 1, 3, 3), {"pads": [1, 1, 1, 1]}),
    ((1, 3, 9, 23), (3, 1, 3, 3), {"pads": [1, 0, 1, 0]}),
    ((2, 2, 33, 17), (4, 1, 5, 5), {"pads": [2, 2, 2, 2]}),
    ((1, 3, 20, 70), (3, 1, 3, 3), {"pads": [0, 1, 1, 0], "strides": [2, 2]}),  # stride 2
]


@pytest.mark.parametrize("case", range(len(PLANE_CASES)))
def test_depthwise_small_planes_and_rows(device, case):
    """Depthwise convs through depthwise_plane or the row kernel (whichever
    this device's rule picks, checked on CPUs), with the activation fused."""
    import clnet

    x_shape, w_shape, attrs = PLANE_CASES[case]
    rng = np.random.default_rng(120 + case)
    attrs = dict(attrs, group=x_shape[1])
    model = _conv_model(x_shape, w_shape, attrs, rng, act="Relu")
    feeds = {"x": rng.standard_normal(x_shape).astype(np.float32)}
    session = clnet.InferenceSession(model.SerializeToString(), device=device)
    got = session.run(None, feeds)
    (launch,) = session.last_plan.launches
    n, c, h, w = x_shape
    pads, (sy, sx) = attrs["pads"], attrs.get("strides", (1, 1))
    ow = (w + pads[1] + pads[3] - w_shape[3]) // sx + 1
    oh = (h + pads[0] + pads[2] - w_shape[2]) // sy + 1
    if device.type == "CPU":
        plane = (sy, sx) == (1, 1) and ow == w and oh * ow <= 784
        assert launch.entry == ("depthwise_plane" if plane else "depthwise")
    assert_close(got[0], reference(model, feeds)[0])


@pytest.mark.parametrize("x_shape,m", [((1, 256, 7, 7), 40), ((2, 300, 5, 9), 13)])
def test_pointwise_conv_small_n_tiles(device, precision, x_shape, m):
    """1x1 convs on few pixels through 12 x 8 tiles (chosen on 8-wide CPUs,
    forced here on any device): rows past M, a last column tile shifted left
    onto its neighbour, batch > 1, bias, residual and activation."""
    policy = {"small_n_tile": True}
    rng = np.random.default_rng(m)
    model = _conv_model(x_shape, (m, x_shape[1], 1, 1), {}, rng, act="Relu", residual=True)
    feeds = {"x": rng.standard_normal(x_shape).astype(np.float32),
             "r": rng.standard_normal((x_shape[0], m) + x_shape[2:]).astype(np.float32)}
    got, want = run_forced(model, feeds, device, policy, precision)
    assert_close(got[0], want[0], precision)
    import clnet
    session = clnet.InferenceSession(model.SerializeToString(), device=device, policy=policy)
    session.run(None, feeds)
    tiles = [(dict(l.defines)["TM"], dict(l.defines)["TN"]) for l in session.last_plan.launches
             if l.entry == "gemm"]
    assert tiles == [(12, 8)]


SHAPED_CASES = [
    # (x shape, w shape, attrs): grouped (not depthwise), 1-D, dilated
    ((1, 12, 11, 13), (12, 3, 3, 3), {"group": 4, "pads": [1, 1, 1, 1]}),         # Mg 3
    ((2, 20, 9, 29), (30, 10, 3, 3), {"group": 2, "pads": [1, 0, 2, 1],
                                      "strides": [2, 1]}),                         # Mg 15
    ((1, 18, 13, 12), (27, 6, 3, 3), {"group": 3, "dilations": [2, 1],
                                      "pads": [2, 1, 2, 1]}),
    ((1, 64, 7, 9), (32, 16, 3, 3), {"group": 4, "strides": [3, 3], "pads": [1] * 4}),
    ((1, 9, 5, 19), (36, 3, 1, 3), {"group": 3}),
    ((1, 3, 301), (29, 3, 7), {"pads": [3, 2]}),                                   # 1-D, C <= 16
    ((2, 5, 77), (13, 5, 4), {"strides": [3], "pads": [1, 2], "dilations": [2]}),
    ((1, 40, 201), (37, 40, 3), {"pads": [4, 4], "dilations": [4]}),               # 1-D TCN
    ((1, 24, 130), (33, 24, 5), {"strides": [2], "pads": [2, 2]}),
    ((1, 36, 97), (18, 6, 3), {"group": 6, "pads": [1, 1]}),                       # 1-D grouped
    ((1, 1, 999), (16, 1, 40), {"strides": [16]}),                                 # 1-D STFT-like
    ((1, 20, 9, 17), (24, 20, 3, 3), {"dilations": [2, 3], "pads": [2, 3, 2, 3]}),
]


@pytest.mark.parametrize("case", range(len(SHAPED_CASES)))
@pytest.mark.parametrize("variant", ["direct", "im2col", None])
@pytest.mark.parametrize("epilogue", ["relu", "residual", "Sigmoid"])
def test_grouped_1d_dilated_convs(device, precision, case, variant, epilogue):
    """Grouped (not depthwise), 1-D and dilated convs through each algorithm
    that the policy can force (conv_direct with groups, dilations and
    one-row tiles; conv_oc with dilations; im2col + GEMM), and the default
    choice: odd lengths, channels per group not a multiple of the tile,
    strides, dilations, uneven pads, batch 2, bias, residual Add and
    activation fused, fp32 and fp16 storage (where the direct kernels do
    not run)."""
    import clnet
    from clnet.ops.conv.direct import GROUP_MAX_C
    x_shape, w_shape, attrs = SHAPED_CASES[case]
    rng = np.random.default_rng(70 + case)
    act = {"relu": "Relu", "residual": None}.get(epilogue, epilogue)
    model = _conv_model(x_shape, w_shape, attrs, rng, act=act, residual=epilogue == "residual")
    feeds = {"x": rng.standard_normal(x_shape).astype(np.float32)}
    if epilogue == "residual":
        plain = _conv_model(x_shape, w_shape, attrs, np.random.default_rng(0))
        feeds["r"] = rng.standard_normal(reference(plain, feeds)[0].shape).astype(np.float32)
    session = clnet.InferenceSession(model.SerializeToString(), device=device,
                                     precision=precision,
                                     policy={"conv_algorithm": variant})
    got = session.run(None, feeds)
    entries = {l.entry for l in session.last_plan.launches}
    assert "depthwise" not in entries
    taps, stride = np.prod(w_shape[2:]), max(attrs.get("strides", [1]))
    if variant == "im2col" or precision == "fp16" or taps == 1 or stride > 4:
        assert entries & {"im2col", "gemm"} and not entries & {"conv_direct", "conv_oc"}
    elif variant == "direct":
        group = attrs.get("group", 1)
        want = "conv_direct" if group > 1 or x_shape[1] <= 16 else "conv_oc"
        assert want in entries and w_shape[1] <= GROUP_MAX_C
    assert_close(got[0], reference(model, feeds)[0], precision)


TRADE_CASES = [
    # (x shape, w shape, attrs, {vector width: (TM, RY)})
    ((1, 3, 301), (64, 3, 7), {"pads": [3, 3]}, {16: (22, 1), 8: (6, 1), 4: (4, 1)}),
    ((1, 128, 28, 28), (128, 4, 3, 3), {"group": 32, "pads": [1] * 4},
     {16: (4, 6), 8: (4, 1), 4: (4, 1)}),
    ((1, 3, 2, 40), (30, 3, 3, 3), {"pads": [1] * 4}, {16: (10, 2), 8: (6, 1), 4: (4, 1)}),
]


@pytest.mark.parametrize("case", range(len(TRADE_CASES)))
def test_direct_tile_trades_rows_for_channels(device, case):
    """conv_direct keeps its tile's TM x RY accumulators (16-wide: 8 x 3)
    where the conv has fewer output rows (1-D: 22 channels x 1 row, three
    tiles over 64 channels; two rows: 10 x 2, three tiles over 30) or
    fewer channels per group (4 channels x 6 rows), with the device's own
    vector width (a tile forced wider crashes PyPI's PoCL 3.0)."""
    import clnet
    from clnet.policy import KernelPolicy
    x_shape, w_shape, attrs, tiles = TRADE_CASES[case]
    rng = np.random.default_rng(3)
    model = _conv_model(x_shape, w_shape, attrs, rng, act="Relu")
    feeds = {"x": rng.standard_normal(x_shape).astype(np.float32)}
    session = clnet.InferenceSession(model.SerializeToString(), device=device)
    got = session.run(None, feeds)
    width = KernelPolicy(session.device).direct_tile_width
    (launch,) = [l for l in session.last_plan.launches if l.entry == "conv_direct"]
    assert (dict(launch.defines)["TM"], dict(launch.defines)["RY"]) == tiles[width]
    assert_close(got[0], reference(model, feeds)[0])
