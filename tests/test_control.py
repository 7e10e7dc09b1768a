"""If, Loop and Scan with subgraphs (outer-scope reads, nesting) against onnxruntime."""
from __future__ import annotations

import numpy as np
import pytest
from onnx import TensorProto, helper, numpy_helper

from conftest import assert_close, run_both

F = TensorProto.FLOAT


def info(name, dtype=F, shape=None):
    return helper.make_tensor_value_info(name, dtype, shape)


def model_of(nodes, inputs, outputs, inits=(), opset=17):
    graph = helper.make_graph(nodes, "g", inputs, outputs, list(inits))
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])


def branches():
    """then: x * w (outer reads x and w); else: x + 1, both [3, 13]."""
    then = helper.make_graph([helper.make_node("Mul", ["x", "w"], ["t"])], "then", [],
                             [info("t", F, [3, 13])])
    one = numpy_helper.from_array(np.ones((1,), np.float32), "one")
    other = helper.make_graph([helper.make_node("Add", ["x", "one"], ["e"])], "else", [],
                              [info("e", F, [3, 13])], [one])
    return then, other


@pytest.mark.parametrize("flag", [True, False])
def test_if_runtime_condition(device, precision, flag):
    then, other = branches()
    # the condition is computed on the device (a bool input would be keyed by value)
    nodes = [helper.make_node("Relu", ["x0"], ["x"]),
             helper.make_node("Greater", ["s", "zero"], ["c"]),
             helper.make_node("If", ["c"], ["y"], then_branch=then, else_branch=other),
             helper.make_node("Sigmoid", ["y"], ["z"])]
    w = numpy_helper.from_array(np.linspace(-1, 1, 13, dtype=np.float32), "w")
    zero = numpy_helper.from_array(np.zeros((), np.float32), "zero")
    model = model_of(nodes, [info("x0", F, [3, 13]), info("s", F, [])],
                     [info("z", F, [3, 13])], [w, zero])
    x = np.random.default_rng(1).standard_normal((3, 13)).astype(np.float32)
    feeds = {"x0": x, "s": np.array(1.0 if flag else -1.0, np.float32)}
    got, want = run_both(model, feeds, device, precision)
    assert_close(got, want, precision)


def test_if_constant_condition_takes_one_branch(device):
    then = helper.make_graph([helper.make_node("Neg", ["x"], ["t"])], "then", [],
                             [info("t", F, None)])
    other = helper.make_graph([helper.make_node("Tile", ["x", "reps"], ["e"])], "else", [],
                              [info("e", F, None)])
    nodes = [helper.make_node("Shape", ["x"], ["s"]),
             helper.make_node("ReduceProd", ["s"], ["n"], keepdims=0),
             helper.make_node("Greater", ["n", "ten"], ["c"]),
             helper.make_node("If", ["c"], ["y"], then_branch=then, else_branch=other)]
    inits = [numpy_helper.from_array(np.array(10, np.int64), "ten"),
             numpy_helper.from_array(np.array([2, 1], np.int64), "reps")]
    model = model_of(nodes, [info("x", F, [3, 13])], [info("y", F, None)], inits)
    x = np.arange(39, dtype=np.float32).reshape(3, 13)
    got, want = run_both(model, {"x": x}, device)
    assert_close(got, want)


def test_if_different_shapes_at_run_time_is_refused(device):
    import clnet
    from clnet.errors import ClnetError
    then = helper.make_graph([helper.make_node("Identity", ["x"], ["t"])], "then", [],
                             [info("t", F, None)])
    other = helper.make_graph([helper.make_node("Concat", ["x", "x"], ["e"], axis=0)],
                              "else", [], [info("e", F, None)])
    model = model_of([helper.make_node("ReduceMax", ["x"], ["m"], keepdims=0),
                      helper.make_node("Cast", ["m"], ["c"], to=TensorProto.BOOL),
                      helper.make_node("If", ["c"], ["y"], then_branch=then,
                                       else_branch=other)],
                     [info("x", F, [3])], [info("y", F, None)])
    with pytest.raises(ClnetError, match="then_branch.*else_branch"):
        clnet.InferenceSession(model.SerializeToString(), device=device)


def test_if_condition_from_integer_input_takes_one_branch(device):
    """A condition computed from a small integer graph input (silero-vad's
    sample rate) is keyed by value: only the taken branch is inlined, so the
    other need not be valid for the fed shapes (here its MatMul is not)."""
    import clnet
    from conftest import reference

    def branch(tag, rows):
        weight = numpy_helper.from_array(
            np.linspace(-1, 1, rows * 2, dtype=np.float32).reshape(rows, 2), f"w{tag}")
        return helper.make_graph([helper.make_node("MatMul", ["x", f"w{tag}"], [f"y{tag}"])],
                                 tag, [], [info(f"y{tag}", F, None)], [weight])

    sixteen = numpy_helper.from_array(np.array(16000, np.int64), "sixteen")
    nodes = [helper.make_node("Equal", ["sr", "sixteen"], ["c"]),
             helper.make_node("If", ["c"], ["y"], then_branch=branch("then", 4),
                              else_branch=branch("else", 8))]
    model = model_of(nodes, [info("x", F, [1, "n"]), info("sr", TensorProto.INT64, [])],
                     [info("y", F, None)], [sixteen])
    session = clnet.InferenceSession(model.SerializeToString(), device=device)
    rng = np.random.default_rng(3)
    for rate, width in ((16000, 4), (8000, 8), (16000, 4)):
        feeds = {"x": rng.standard_normal((1, width)).astype(np.float32),
                 "sr": np.array(rate, np.int64)}
        assert_close(session.run(None, feeds), reference(model, feeds))


def loop_body(with_if: bool):
    """acc = acc * 0.5 + x[i] (+ nested If on i < 2), scan output acc * 2."""
    nodes = [helper.make_node("Gather", ["x", "i"], ["xi"], axis=0),
             helper.make_node("Mul", ["acc", "half"], ["scaled"]),
             helper.make_node("Add", ["scaled", "xi"], ["acc_raw"]),
             helper.make_node("Identity", ["cond"], ["cond_out"]),
             helper.make_node("Add", ["acc_out", "acc_out"], ["doubled"])]
    if with_if:
        then = helper.make_graph([helper.make_node("Neg", ["acc_raw"], ["neg"])], "t", [],
                                 [info("neg", F, [13])])
        other = helper.make_graph([helper.make_node("Identity", ["acc_raw"], ["same"])], "e",
                                  [], [info("same", F, [13])])
        nodes.insert(3, helper.make_node("Less", ["i", "two"], ["early"]))
        nodes.insert(4, helper.make_node("If", ["early"], ["acc_out"], then_branch=then,
                                         else_branch=other))
    else:
        nodes.insert(3, helper.make_node("Identity", ["acc_raw"], ["acc_out"]))
    return helper.make_graph(
        nodes, "body",
        [info("i", TensorProto.INT64, []), info("cond", TensorProto.BOOL, []),
         info("acc", F, [13])],
        [info("cond_out", TensorProto.BOOL, []), info("acc_out", F, [13]),
         info("doubled", F, [13])])


@pytest.mark.parametrize("with_if", [False, True])
def test_loop_trip_count_from_shape(device, precision, with_if):
    nodes = [helper.make_node("Shape", ["x"], ["shape"]),
             helper.make_node("Gather", ["shape", "zero"], ["n"], axis=0),
             helper.make_node("Loop", ["n", "", "init"], ["final", "history"],
                              body=loop_body(with_if))]
    inits = [numpy_helper.from_array(np.array(0, np.int64), "zero"),
             numpy_helper.from_array(np.array(2, np.int64), "two"),
             numpy_helper.from_array(np.array(0.5, np.float32), "half")]
    model = model_of(nodes, [info("x", F, [7, 13]), info("init", F, [13])],
                     [info("final", F, [13]), info("history", F, [7, 13])], inits)
    rng = np.random.default_rng(2)
    feeds = {"x": rng.standard_normal((7, 13)).astype(np.float32),
             "init": rng.standard_normal(13).astype(np.float32)}
    got, want = run_both(model, feeds, device, precision)
    assert_close(got, want, precision)


def test_loop_runtime_condition_stops_early(device):
    """while (sum < limit) with an upper bound: the condition lives on the device."""
    body = helper.make_graph(
        [helper.make_node("Add", ["v", "step"], ["v_out"]),
         helper.make_node("ReduceSum", ["v_out"], ["total"], keepdims=0),
         helper.make_node("Less", ["total", "limit"], ["cond_out"])],
        "body",
        [info("i", TensorProto.INT64, []), info("cond", TensorProto.BOOL, []),
         info("v", F, [3])],
        [info("cond_out", TensorProto.BOOL, []), info("v_out", F, [3])])
    nodes = [helper.make_node("Loop", ["m", "c0", "v0"], ["v_final"], body=body)]
    inits = [numpy_helper.from_array(np.array(13, np.int64), "m")]
    model = model_of(nodes, [info("c0", TensorProto.BOOL, []), info("v0", F, [3]),
                             info("step", F, [3]), info("limit", F, [])],
                     [info("v_final", F, [3])], inits)
    for limit, c0 in ((5.0, True), (100.0, True), (5.0, False)):
        feeds = {"c0": np.array(c0), "v0": np.array([0.5, 1, 0], np.float32),
                 "step": np.array([1, 0.25, 0.5], np.float32),
                 "limit": np.array(limit, np.float32)}
        got, want = run_both(model, feeds, device)
        assert_close(got, want)


def _neg_body(p: str, scan: bool = False):
    """Loop body: v_out = -v_in (and the scan output y = v_out + i); names start with p."""
    nodes = [helper.make_node("Identity", [p + "cond"], [p + "c"]),
             helper.make_node("Neg", [p + "v_in"], [p + "v_out"])]
    outputs = [info(p + "c", TensorProto.BOOL, []), info(p + "v_out", F, [3])]
    if scan:
        nodes += [helper.make_node("Cast", [p + "i"], [p + "i_f"], to=F),
                  helper.make_node("Add", [p + "v_out", p + "i_f"], [p + "y"])]
        outputs.append(info(p + "y", F, [3]))
    return helper.make_graph(nodes, "body", [info(p + "i", TensorProto.INT64, []),
                                             info(p + "cond", TensorProto.BOOL, []),
                                             info(p + "v_in", F, [3])], outputs)


def test_loop_trip_count_fed_as_input(device):
    """A trip count fed as a graph input is keyed by value: one plan per count."""
    import clnet
    from conftest import reference
    model = model_of([helper.make_node("Loop", ["m", "", "v0"], ["v", "ys"],
                                       body=_neg_body("b_", scan=True))],
                     [info("m", TensorProto.INT64, []), info("v0", F, [3])],
                     [info("v", F, [3]), info("ys", F, None)])
    session = clnet.InferenceSession(model.SerializeToString(), device=device)
    for count in (3, 0, 5):
        feeds = {"m": np.array(count, np.int64), "v0": np.array([1, -2, 3], np.float32)}
        got = session.run(None, feeds)
        assert got[1].shape == (count, 3)
        assert_close(got, reference(model, feeds))


def test_loop_trip_count_from_device_data_fails_cleanly(device):
    """An inner loop counting to a value computed on the device cannot be unrolled."""
    import clnet
    from clnet.errors import UnsupportedOpError
    outer = helper.make_graph(
        [helper.make_node("Identity", ["cond"], ["c"]),
         helper.make_node("ReduceMax", ["w_in"], ["wm"], keepdims=0),
         helper.make_node("Cast", ["wm"], ["m_inner"], to=TensorProto.INT64),
         helper.make_node("Loop", ["m_inner", "", "w_in"], ["w_out"], name="inner",
                          body=_neg_body("inner_"))],
        "outer", [info("i", TensorProto.INT64, []), info("cond", TensorProto.BOOL, []),
                  info("w_in", F, [3])],
        [info("c", TensorProto.BOOL, []), info("w_out", F, [3])])
    inits = [numpy_helper.from_array(np.array(2, np.int64), "two")]
    model = model_of([helper.make_node("Loop", ["two", "", "v0"], ["v"], body=outer)],
                     [info("v0", F, [3])], [info("v", F, [3])], inits)
    with pytest.raises(UnsupportedOpError, match="inner.*trip count '.*m_inner'.*on the device"):
        session = clnet.InferenceSession(model.SerializeToString(), device=device)
        session.run(None, {"v0": np.ones(3, np.float32)})


@pytest.mark.parametrize("reverse", [0, 1])
def test_scan_axes_and_directions(device, precision, reverse):
    body = helper.make_graph(
        [helper.make_node("Add", ["s", "col"], ["s_out"]),
         helper.make_node("Mul", ["s_out", "col"], ["y"]),
         helper.make_node("Tanh", ["row"], ["y2"])],
        "body",
        [info("s", F, [3]), info("col", F, [3]), info("row", F, [5])],
        [info("s_out", F, [3]), info("y", F, [3]), info("y2", F, [5])])
    node = helper.make_node("Scan", ["s0", "a", "b"], ["s", "ys", "y2s"], body=body,
                            num_scan_inputs=2, scan_input_axes=[1, 0],
                            scan_input_directions=[reverse, 0],
                            scan_output_axes=[-1, 0], scan_output_directions=[0, reverse])
    model = model_of([node], [info("s0", F, [3]), info("a", F, [3, 13]), info("b", F, [13, 5])],
                     [info("s", F, [3]), info("ys", F, [3, 13]), info("y2s", F, [13, 5])])
    rng = np.random.default_rng(3)
    feeds = {"s0": rng.standard_normal(3).astype(np.float32),
             "a": rng.standard_normal((3, 13)).astype(np.float32),
             "b": rng.standard_normal((13, 5)).astype(np.float32)}
    got, want = run_both(model, feeds, device, precision)
    assert_close(got, want, precision)


def test_scan8_batch_axis(device):
    body = helper.make_graph(
        [helper.make_node("Add", ["s", "x"], ["s_out"]),
         helper.make_node("Mul", ["s_out", "x"], ["y"])],
        "body", [info("s", F, [2]), info("x", F, [2])],
        [info("s_out", F, [2]), info("y", F, [2])])
    node = helper.make_node("Scan", ["", "s0", "xs"], ["s", "ys"], body=body,
                            num_scan_inputs=1, directions=[1])
    model = model_of([node], [info("s0", F, [3, 2]), info("xs", F, [3, 5, 2])],
                     [info("s", F, [3, 2]), info("ys", F, [3, 5, 2])], opset=8)
    rng = np.random.default_rng(4)
    feeds = {"s0": rng.standard_normal((3, 2)).astype(np.float32),
             "xs": rng.standard_normal((3, 5, 2)).astype(np.float32)}
    got, want = run_both(model, feeds, device)
    assert_close(got, want)


def test_unsupported_op_inside_a_branch_is_named_at_load(device):
    import clnet
    from clnet.errors import UnsupportedOpError
    then = helper.make_graph([helper.make_node("MaxRoiPool", ["x", "x"], ["t"],
                                               name="inner_pool", pooled_shape=[1, 1])],
                             "then", [], [info("t", F, None)])
    other = helper.make_graph([helper.make_node("ReduceSum", ["x"], ["e"], keepdims=0)],
                              "else", [], [info("e", F, None)])
    model = model_of([helper.make_node("If", ["c"], ["y"], then_branch=then,
                                       else_branch=other, name="branch")],
                     [info("x", F, [3, 3]), info("c", TensorProto.BOOL, [])],
                     [info("y", F, None)])
    with pytest.raises(UnsupportedOpError, match="'inner_pool' \\(in 'branch'\\): MaxRoiPool"):
        clnet.InferenceSession(model.SerializeToString(), device=device)
