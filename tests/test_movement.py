"""Data-movement ops on the device (Tile, Split, Pad, DepthToSpace,
SpaceToDepth, Trilu, OneHot, EyeLike, Squeeze/Unsqueeze/Flatten/Reshape edge
cases) against the reference, in both storage modes and for int64 data."""
from __future__ import annotations

import numpy as np
import pytest
from onnx import helper

from test_gather import check, make_model, rand, RNG


@pytest.mark.parametrize("repeats", [(1, 3, 2), (2, 1, 1)])
def test_tile(device, precision, repeats):
    check(device, precision, [helper.make_node("Tile", ["x", "r"], ["y"])],
          {"x": rand(3, 5, 13)}, {"r": np.array(repeats, np.int64)})


@pytest.mark.parametrize("dtype", [np.float32, np.int64, np.uint8])
def test_copies_of_contiguous_runs(device, precision, dtype):
    """Transpose, Concat and Slice whose innermost runs are contiguous and a
    multiple of 8 long (elementwise.cl -DVEC): a vector per work-item."""
    x = (RNG.standard_normal((2, 5, 3, 24)) * 9).astype(dtype)
    nodes = [helper.make_node("Transpose", ["x"], ["t"], perm=[0, 2, 1, 3]),
             helper.make_node("Concat", ["t", "t"], ["c"], axis=2),
             helper.make_node("Slice", ["c", "s", "e", "a"], ["y"])]
    inits = {"s": np.array([1, 8], np.int64), "e": np.array([9, 24], np.int64),
             "a": np.array([2, 3], np.int64)}
    check(device, precision, nodes, {"x": x}, inits)


@pytest.mark.parametrize("run", [8, 16, 24, 48, 64, 128])
@pytest.mark.parametrize("dtype", [np.float32, np.int64, np.uint8])
def test_head_transposes_several_vectors_per_item(device, precision, run, dtype):
    """BERT's head transpose [b, s, h, d] -> [b, h, s, d]: on a CPU a
    work-item copies up to 8 vectors of 8 of a run (-DVREPS: 2 for 16 and
    48, 8 for 64 and 128 elements, none for 8 and 24)."""
    import clnet
    x = (RNG.standard_normal((2, 5, 3, run)) * 9).astype(dtype)
    nodes = [helper.make_node("Transpose", ["x"], ["y"], perm=[0, 2, 1, 3])]
    check(device, precision, nodes, {"x": x})
    model = make_model(nodes, {"x": x}, None, ("y",), 18)
    session = clnet.InferenceSession(model.SerializeToString(), device=device)
    session.run(None, {"x": x})
    (launch,) = session.last_plan.launches
    reps = dict(launch.defines).get("VREPS", 1)
    want = {8: 1, 16: 2, 24: 1, 48: 2, 64: 8, 128: 8}[run] if device.type == "CPU" else 1
    assert reps == want


TILED_TRANSPOSES = [
    # (shape, perm): the output's innermost dim strided in the input, which is
    # contiguous along another dim; both dims multiples of 8 (copy_tiles)
    ((1, 16, 4, 24), [0, 2, 3, 1]),        # attention's K^T, NCHW -> NHWC
    ((2, 3, 16, 40), [0, 1, 3, 2]),        # the last two dims swapped
    ((8, 5, 16), [2, 1, 0]),
    ((3, 8, 5, 16), [0, 3, 2, 1]),
]


@pytest.mark.parametrize("case", range(len(TILED_TRANSPOSES)))
@pytest.mark.parametrize("dtype", [np.float32, np.int64, np.uint8])
def test_tiled_transposes(device, precision, case, dtype):
    """Transposes moved in 8 x 8 tiles (elementwise.cl copy_tiles), for
    every element size, against the reference; the plan uses the tile kernel."""
    import clnet

    shape, perm = TILED_TRANSPOSES[case]
    x = (RNG.standard_normal(shape) * 9).astype(dtype)
    node = helper.make_node("Transpose", ["x"], ["y"], perm=perm)
    check(device, precision, [node], {"x": x})
    from onnx import TensorProto
    graph = helper.make_graph([node], "g", [helper.make_tensor_value_info(
        "x", helper.np_dtype_to_tensor_dtype(np.dtype(dtype)), list(shape))],
        [helper.make_tensor_value_info("y", TensorProto.UNDEFINED, None)])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    session = clnet.InferenceSession(model.SerializeToString(), device=device)
    np.testing.assert_array_equal(session.run(None, {"x": x})[0], x.transpose(perm))
    assert [l.entry for l in session.last_plan.launches] == ["copy_tiles"]


def test_tile_int64(device):
    x = RNG.integers(-9, 9, size=(3, 1)).astype(np.int64)
    check(device, "fp32", [helper.make_node("Tile", ["x", "r"], ["y"])],
          {"x": x}, {"r": np.array([2, 13], np.int64)})


@pytest.mark.parametrize("form", ["input", "attr", "num_outputs", "equal"])
def test_split(device, precision, form):
    x = rand(3, 13, 2)
    outs = ["a", "b", "c"]
    if form == "input":
        node, opset, inits = helper.make_node("Split", ["x", "s"], outs, axis=1), 13, \
            {"s": np.array([6, 0, 7], np.int64)}
    elif form == "attr":
        node, opset, inits = helper.make_node("Split", ["x"], outs, axis=-2,
                                              split=[1, 5, 7]), 11, None
    elif form == "num_outputs":   # uneven: 5, 5, 3
        node, opset, inits = helper.make_node("Split", ["x"], outs, axis=1,
                                              num_outputs=3), 18, None
    else:
        node, opset, inits = helper.make_node("Split", ["x"], outs), 13, None
    check(device, precision, [node], {"x": x}, inits, opset=opset, outputs=outs)


@pytest.mark.parametrize("mode", ["constant", "reflect", "edge", "wrap"])
def test_pad_modes(device, precision, mode):
    pads = np.array([0, 2, 1, 1, 3, -1], np.int64)   # negative: crop
    if mode == "reflect":
        pads = np.array([0, 2, 1, 1, 4, -1], np.int64)
    nodes = [helper.make_node("Pad", ["x", "p", "v"], ["y"], mode=mode)]
    inits = {"p": pads, "v": np.array(1.5, np.float32)}
    check(device, precision, nodes, {"x": rand(3, 5, 13)}, inits, opset=19)


def test_pad_axes_and_int64(device):
    x = RNG.integers(-5, 5, size=(3, 13)).astype(np.int64)
    nodes = [helper.make_node("Pad", ["x", "p", "v", "a"], ["y"])]
    inits = {"p": np.array([2, 3], np.int64), "v": np.array(-7, np.int64),
             "a": np.array([-1], np.int64)}
    check(device, "fp32", nodes, {"x": x}, inits, opset=18)


def test_pad_attribute_form(device, precision):
    node = helper.make_node("Pad", ["x"], ["y"], pads=[1, 0, 2, 3], value=-2.0)
    check(device, precision, [node], {"x": rand(5, 13)}, opset=2)


@pytest.mark.parametrize("mode", ["DCR", "CRD"])
def test_depth_space_round_trip(device, precision, mode):
    x = rand(2, 12, 3, 5)
    check(device, precision, [helper.make_node("DepthToSpace", ["x"], ["y"], blocksize=2,
                                               mode=mode)], {"x": x})
    check(device, precision, [helper.make_node("SpaceToDepth", ["x"], ["y"], blocksize=3)],
          {"x": rand(1, 3, 6, 9)})


@pytest.mark.parametrize("upper", [0, 1])
@pytest.mark.parametrize("k", [-2, 0, 3])
def test_trilu(device, precision, upper, k):
    check(device, precision, [helper.make_node("Trilu", ["x", "k"], ["y"], upper=upper)],
          {"x": rand(2, 5, 13)}, {"k": np.array(k, np.int64)}, opset=14)


@pytest.mark.parametrize("axis", [-1, 1])
def test_one_hot(device, precision, axis):
    idx = RNG.integers(-13, 13, size=(3, 5)).astype(np.int64)
    nodes = [helper.make_node("OneHot", ["i", "d", "v"], ["y"], axis=axis)]
    check(device, precision, nodes, {"i": idx},
          {"d": np.array(13, np.int64), "v": np.array([-0.5, 2.0], np.float32)}, opset=11)


def test_one_hot_float_indices(device, precision):
    idx = np.array([[0, 2.0, 12], [-1, 5, 7]], np.float32)
    nodes = [helper.make_node("OneHot", ["i", "d", "v"], ["y"])]
    check(device, precision, nodes, {"i": idx},
          {"d": np.array(13, np.int64), "v": np.array([0, 1], np.int64)}, opset=11)


def test_eye_like(device):
    check(device, "fp32", [helper.make_node("EyeLike", ["x"], ["y"], k=2)], {"x": rand(5, 13)})


def test_view_edge_cases(device, precision):
    x = rand(3, 1, 13, 1)
    nodes = [helper.make_node("Squeeze", ["x", "a"], ["s"]),            # -> 3, 13, 1
             helper.make_node("Unsqueeze", ["s", "b"], ["u"]),         # -> 1, 3, 13, 1, 1
             helper.make_node("Flatten", ["u"], ["f"], axis=-2),       # -> 39, 1
             helper.make_node("Reshape", ["f", "r"], ["y"])]           # -> 13, 1, 3
    inits = {"a": np.array([1], np.int64), "b": np.array([0, -1], np.int64),
             "r": np.array([13, 0, -1], np.int64)}
    got = check(device, precision, nodes, {"x": x}, inits)
    assert got[0].shape == (13, 1, 3)


def test_pad_value_computed_at_run_time(device, precision):
    nodes = [helper.make_node("Neg", ["v"], ["nv"]),
             helper.make_node("Pad", ["x", "p", "nv"], ["y"])]
    check(device, precision, nodes, {"x": rand(3, 13), "v": np.array(2.5, np.float32)},
          {"p": np.array([1, 0, 2, 3], np.int64)}, opset=13)


@pytest.mark.parametrize("batch_axis,time_axis", [(1, 0), (0, 1)])
def test_reverse_sequence(device, precision, batch_axis, time_axis):
    x = rand(7, 5, 3) if time_axis == 0 else rand(5, 7, 3)
    lens = np.array([7, 0, 3, 1, 6], np.int64)
    check(device, precision, [helper.make_node("ReverseSequence", ["x", "l"], ["y"],
                                               batch_axis=batch_axis, time_axis=time_axis)],
          {"x": x, "l": lens}, opset=10)


def test_center_crop_pad(device, precision):
    check(device, precision, [helper.make_node("CenterCropPad", ["x", "s"], ["y"], axes=[-1, 1])],
          {"x": rand(2, 13, 4)}, {"s": np.array([7, 6], np.int64)}, opset=18)


def test_dropout_inference_is_identity_with_mask(device, precision):
    nodes = [helper.make_node("Dropout", ["x", "r", "t"], ["y", "m"])]
    check(device, precision, nodes, {"x": rand(3, 13)},
          {"r": np.array(0.3, np.float32), "t": np.array(False)}, opset=13, outputs=("y", "m"))
