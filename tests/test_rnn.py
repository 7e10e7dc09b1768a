"""RNN, GRU and LSTM on the device against onnxruntime: every direction,
layouts, sequence_lens, initial states, peepholes, clip, activations."""
from __future__ import annotations

import numpy as np
import pytest
from onnx import TensorProto, helper, numpy_helper

from conftest import assert_close, run_both

GATES = {"RNN": 1, "GRU": 3, "LSTM": 4}


def recurrent_model(op: str, seq: int, batch: int, n_in: int, hidden: int, *,
                    direction: str = "forward", layout: int = 0, const_weights: bool = True,
                    lens=None, initial: bool = False, peephole: bool = False,
                    opset: int = 14, seed: int = 0, **attrs):
    """A one-node model; returns (model, feeds)."""
    rng = np.random.default_rng(seed)
    dirs = 2 if direction == "bidirectional" else 1
    g = GATES[op]
    x_shape = (batch, seq, n_in) if layout else (seq, batch, n_in)
    state = (batch, dirs, hidden) if layout else (dirs, batch, hidden)
    arrays = {
        "X": rng.standard_normal(x_shape).astype(np.float32),
        "W": (rng.standard_normal((dirs, g * hidden, n_in)) * 0.4).astype(np.float32),
        "R": (rng.standard_normal((dirs, g * hidden, hidden)) * 0.4).astype(np.float32),
        "B": (rng.standard_normal((dirs, 2 * g * hidden)) * 0.2).astype(np.float32),
    }
    names = ["X", "W", "R", "B"]
    if lens is not None or initial or peephole:
        names.append("sequence_lens" if lens is not None else "")
        if lens is not None:
            arrays["sequence_lens"] = np.asarray(lens, np.int32)
    if initial or peephole:
        names.append("initial_h" if initial else "")
        if initial:
            arrays["initial_h"] = rng.standard_normal(state).astype(np.float32)
    if op == "LSTM" and (initial or peephole):
        names.append("initial_c" if initial else "")
        if initial:
            arrays["initial_c"] = rng.standard_normal(state).astype(np.float32)
        if peephole:
            names.append("P")
            arrays["P"] = (rng.standard_normal((dirs, 3 * hidden)) * 0.3).astype(np.float32)
    outputs = ["Y", "Y_h"] + (["Y_c"] if op == "LSTM" else [])
    if layout:
        attrs["layout"] = 1
    node = helper.make_node(op, names, outputs, hidden_size=hidden, direction=direction,
                            **attrs)
    feeds, inits, inputs = {}, [], []
    for name in names:
        if not name:
            continue
        arr = arrays[name]
        if const_weights and name not in ("X", "sequence_lens"):
            inits.append(numpy_helper.from_array(arr, name))
        else:
            dtype = TensorProto.INT32 if arr.dtype == np.int32 else TensorProto.FLOAT
            inputs.append(helper.make_tensor_value_info(name, dtype, arr.shape))
            feeds[name] = arr
    outs = [helper.make_tensor_value_info(o, TensorProto.FLOAT, None) for o in outputs]
    graph = helper.make_graph([node], op.lower(), inputs, outs, inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    return model, feeds


@pytest.mark.parametrize("op", ["RNN", "GRU", "LSTM"])
@pytest.mark.parametrize("direction", ["forward", "reverse", "bidirectional"])
def test_directions(device, precision, op, direction):
    model, feeds = recurrent_model(op, 13, 3, 5, 7, direction=direction)
    got, want = run_both(model, feeds, device, precision)
    assert_close(got, want, precision)


@pytest.mark.parametrize("op", ["RNN", "GRU", "LSTM"])
def test_runtime_weights_lens_initial(device, op):
    model, feeds = recurrent_model(op, 5, 3, 4, 6, direction="bidirectional",
                                   const_weights=False, lens=[5, 1, 3], initial=True)
    got, want = run_both(model, feeds, device)
    assert_close(got, want)


@pytest.mark.parametrize("op", ["RNN", "GRU", "LSTM"])
def test_batch_first_layout(device, op):
    # onnxruntime lacks layout=1: the reference is the ONNX reference evaluator
    model, feeds = recurrent_model(op, 5, 3, 4, 6, layout=1, initial=True)
    got, want = run_both(model, feeds, device)
    assert_close(got, want)


def test_lstm_peephole_clip_input_forget(device, precision):
    model, feeds = recurrent_model("LSTM", 7, 1, 3, 13, direction="bidirectional",
                                   peephole=True, initial=True, clip=0.7, input_forget=1)
    got, want = run_both(model, feeds, device, precision)
    assert_close(got, want, precision)


@pytest.mark.parametrize("lbr", [0, 1])
def test_gru_linear_before_reset(device, lbr):
    model, feeds = recurrent_model("GRU", 6, 2, 3, 5, linear_before_reset=lbr,
                                   lens=[6, 4], initial=True)
    got, want = run_both(model, feeds, device)
    assert_close(got, want)


def test_activations(device):
    model, feeds = recurrent_model(
        "LSTM", 4, 2, 3, 5, direction="bidirectional",
        activations=["HardSigmoid", "LeakyRelu", "Softsign", "Sigmoid", "ScaledTanh", "Elu"],
        activation_alpha=[0.3, 0.05, 0.9, 0.5], activation_beta=[0.4, 1.1])
    got, want = run_both(model, feeds, device)
    assert_close(got, want)


def test_rnn_relu_long_sequence(device):
    model, feeds = recurrent_model("RNN", 127, 1, 3, 4, activations=["Relu"])
    got, want = run_both(model, feeds, device)
    assert_close(got, want)


@pytest.mark.parametrize("op", ["RNN", "LSTM"])
def test_zero_lengths(device, op):
    """A batch entry of length 0 (and an empty sequence) gives zero Y_h/Y_c."""
    model, feeds = recurrent_model(op, 4, 3, 3, 5, direction="bidirectional", initial=True,
                                   lens=[4, 0, 2], const_weights=False)
    got, want = run_both(model, feeds, device)
    assert_close(got, want)
    model, feeds = recurrent_model(op, 0, 3, 3, 5, initial=True)
    got, want = run_both(model, feeds, device)
    assert [g.shape for g in got] == [np.asarray(w).shape for w in want]
    assert not any(g.any() for g in got)


def test_only_final_states_requested(device):
    model, feeds = recurrent_model("LSTM", 5, 2, 3, 4, direction="bidirectional", initial=True)
    model.graph.node[0].output[0] = ""
    del model.graph.output[0]
    got, want = run_both(model, feeds, device)
    assert_close(got, want)


# The one-launch recurrence (rnn.cl rnn_seq & co) beside the launch-per-step
# kernels, forced through the policy: one unit per work-item (R transposed),
# 4 (a ragged last item at H=13) and 16 (one item), and the step kernels.
SEQUENCE_POLICIES = {
    "steps": {"rnn_fused_steps": False},
    "seq1": {"rnn_fused_steps": True, "rnn_units": 1},
    "seq4": {"rnn_fused_steps": True, "rnn_units": 4},
    "seq16": {"rnn_fused_steps": True, "rnn_units": 16},
}


def run_policy(model, feeds: dict, device, precision: str, variant: str):
    """(clnet outputs under a SEQUENCE_POLICIES variant, reference outputs),
    after checking that the variant's kernels ran."""
    import clnet
    from conftest import reference

    session = clnet.InferenceSession(model.SerializeToString(), device=device,
                                     precision=precision, policy=SEQUENCE_POLICIES[variant])
    got = session.run(None, feeds)
    entries = {launch.entry for launch in session.last_plan.launches}
    fused = any(e.endswith("_seq") for e in entries)
    assert fused == (variant != "steps"), sorted(entries)
    return got, reference(model, feeds)


@pytest.mark.parametrize("variant", sorted(SEQUENCE_POLICIES))
@pytest.mark.parametrize("op", ["RNN", "GRU", "LSTM"])
@pytest.mark.parametrize("direction", ["forward", "reverse", "bidirectional"])
def test_sequence_variants(device, precision, variant, op, direction):
    model, feeds = recurrent_model(op, 9, 2, 5, 13, direction=direction, lens=[9, 4],
                                   initial=True, peephole=op == "LSTM", seed=3, clip=1.5)
    got, want = run_policy(model, feeds, device, precision, variant)
    assert_close(got, want, precision)


@pytest.mark.parametrize("variant", sorted(SEQUENCE_POLICIES))
@pytest.mark.parametrize("op", ["GRU", "LSTM"])
@pytest.mark.parametrize("seq,hidden", [(1, 13), (6, 16), (5, 33)])
def test_sequence_lengths_and_sizes(device, variant, op, seq, hidden):
    model, feeds = recurrent_model(op, seq, 1, 7, hidden, direction="bidirectional")
    got, want = run_policy(model, feeds, device, "fp32", variant)
    assert_close(got, want)


@pytest.mark.parametrize("variant", sorted(SEQUENCE_POLICIES))
@pytest.mark.parametrize("lbr", [0, 1])
def test_sequence_gru_layout(device, precision, variant, lbr):
    # (the reference for layout 1 is onnx.reference: it ignores sequence_lens and clip)
    model, feeds = recurrent_model("GRU", 6, 3, 4, 13, direction="bidirectional", layout=1,
                                   initial=True, linear_before_reset=lbr)
    got, want = run_policy(model, feeds, device, precision, variant)
    assert_close(got, want, precision)


@pytest.mark.parametrize("variant", sorted(SEQUENCE_POLICIES))
@pytest.mark.parametrize("op", ["RNN", "GRU", "LSTM"])
def test_sequence_runtime_weights_zero_lengths(device, variant, op):
    """R fed at run time is packed per run (units then divide H: 12 -> 4)."""
    model, feeds = recurrent_model(op, 5, 3, 4, 12, direction="bidirectional",
                                   const_weights=False, lens=[5, 0, 3], initial=True)
    got, want = run_policy(model, feeds, device, "fp32", variant)
    assert_close(got, want)


def test_sequence_lstm_input_forget_only_final_states(device, precision):
    model, feeds = recurrent_model("LSTM", 7, 2, 3, 13, direction="reverse", peephole=True,
                                   initial=True, clip=0.7, input_forget=1)
    model.graph.node[0].output[0] = ""
    del model.graph.output[0]
    for variant in ("seq4", "seq16"):
        got, want = run_policy(model, feeds, device, precision, variant)
        assert_close(got, want, precision)


ALL_ACTIVATIONS = ["Relu", "Tanh", "Sigmoid", "Affine", "LeakyRelu", "ThresholdedRelu",
                   "ScaledTanh", "HardSigmoid", "Elu", "Softsign", "Softplus"]


@pytest.mark.parametrize("variant", ["seq1", "seq16"])
@pytest.mark.parametrize("kind", ALL_ACTIVATIONS)
def test_sequence_every_activation(device, variant, kind):
    """Each kind as the RNN's function of direction 1 (direction 0: Tanh), with
    its alpha/beta where it takes them."""
    takes = {"Affine": (0.7, 0.1), "LeakyRelu": (0.05,), "ThresholdedRelu": (0.3,),
             "ScaledTanh": (0.9, 1.2), "HardSigmoid": (0.3, 0.4), "Elu": (0.8,)}
    params = takes.get(kind, ())
    attrs = {"activations": ["Tanh", kind]}
    if params:
        attrs["activation_alpha"] = [params[0]]
    if len(params) > 1:
        attrs["activation_beta"] = [params[1]]
    model, feeds = recurrent_model("RNN", 5, 2, 3, 13, direction="bidirectional", **attrs)
    got, want = run_policy(model, feeds, device, "fp32", variant)
    assert_close(got, want)
