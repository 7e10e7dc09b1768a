"""Mixed precision: the assignment pass, calibration, and precision="auto"."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from conftest import reference

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def _model(nodes, inputs, outputs, inits=(), opset=13):
    graph = helper.make_graph(nodes, "m", inputs, outputs, list(inits))
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    onnx.checker.check_model(model)
    return model


def _info(name, shape):
    return helper.make_tensor_value_info(name, TensorProto.FLOAT, shape)


def overflow_model(rng):
    """x @ W reaches ~1e5 (beyond fp16's 65504) before being scaled back down.
    The scale has shape [1]: a 0-d one would be fused into the MatMul as its
    alpha, and the intermediate would never be stored."""
    w = (rng.standard_normal((13, 31)) * 300).astype(np.float32)
    nodes = [helper.make_node("MatMul", ["x", "w"], ["h"]),
             helper.make_node("Mul", ["h", "s"], ["y"])]
    inits = [numpy_helper.from_array(w, "w"),
             numpy_helper.from_array(np.array([1e-4], np.float32), "s")]
    return _model(nodes, [_info("x", [3, 13])], [_info("y", [3, 31])], inits)


def attention_model(rng, seq=13, dim=16):
    """Single-head self-attention with a softmax and a residual."""
    wq, wk, wv = ((rng.standard_normal((dim, dim)) / 4).astype(np.float32) for _ in range(3))
    nodes = [helper.make_node("MatMul", ["x", "wq"], ["q"]),
             helper.make_node("MatMul", ["x", "wk"], ["k"]),
             helper.make_node("MatMul", ["x", "wv"], ["v"]),
             helper.make_node("Transpose", ["k"], ["kt"], perm=[0, 2, 1]),
             helper.make_node("MatMul", ["q", "kt"], ["scores"]),
             helper.make_node("Mul", ["scores", "scale"], ["scaled"]),
             helper.make_node("Softmax", ["scaled"], ["probs"], axis=-1),
             helper.make_node("MatMul", ["probs", "v"], ["ctx"]),
             helper.make_node("Add", ["ctx", "x"], ["sum"]),
             helper.make_node("Relu", ["sum"], ["y"])]
    inits = [numpy_helper.from_array(wq, "wq"), numpy_helper.from_array(wk, "wk"),
             numpy_helper.from_array(wv, "wv"),
             numpy_helper.from_array(np.array(dim ** -0.5, np.float32), "scale")]
    return _model(nodes, [_info("x", [1, seq, dim])], [_info("y", [1, seq, dim])], inits)


class _Encoder:
    """A BERT-style encoder from basic ops (LayerNorm means as MatMuls)."""

    def __init__(self, rng, hidden, seq):
        self.rng, self.hidden, self.seq = rng, hidden, seq
        self.nodes, self.inits, self.count = [], [], 0

    def const(self, array) -> str:
        self.count += 1
        name = f"c{self.count}"
        self.inits.append(numpy_helper.from_array(np.asarray(array, np.float32)
                                                  if np.asarray(array).dtype.kind == "f"
                                                  else np.asarray(array), name))
        return name

    def op(self, op_type, inputs, **attrs) -> str:
        self.count += 1
        out = f"t{self.count}"
        self.nodes.append(helper.make_node(op_type, inputs, [out], **attrs))
        return out

    def dense(self, x, cin, cout) -> str:
        w = self.rng.standard_normal((cin, cout)) / np.sqrt(cin)
        y = self.op("MatMul", [x, self.const(w)])
        return self.op("Add", [y, self.const(self.rng.standard_normal(cout) * 0.02)])

    def layer_norm(self, x) -> str:
        ones = self.const(np.full((self.hidden, 1), 1.0 / self.hidden))
        d = self.op("Sub", [x, self.op("MatMul", [x, ones])])
        var = self.op("MatMul", [self.op("Mul", [d, d]), ones])
        std = self.op("Sqrt", [self.op("Add", [var, self.const(1e-5)])])
        y = self.op("Mul", [self.op("Div", [d, std]), self.const(np.ones(self.hidden))])
        return self.op("Add", [y, self.const(np.zeros(self.hidden))])

    def attention(self, x, heads) -> str:
        dh = self.hidden // heads
        split = self.const(np.array([1, self.seq, heads, dh], np.int64))

        def project(perm):
            y = self.op("Reshape", [self.dense(x, self.hidden, self.hidden), split])
            return self.op("Transpose", [y], perm=perm)

        q, k, v = project([0, 2, 1, 3]), project([0, 2, 3, 1]), project([0, 2, 1, 3])
        scores = self.op("Mul", [self.op("MatMul", [q, k]), self.const(dh ** -0.5)])
        probs = self.op("Softmax", [scores], axis=-1)
        ctx = self.op("Transpose", [self.op("MatMul", [probs, v])], perm=[0, 2, 1, 3])
        merged = self.op("Reshape", [ctx, self.const(np.array([1, self.seq, self.hidden],
                                                              np.int64))])
        return self.dense(merged, self.hidden, self.hidden)

    def gelu(self, x) -> str:
        erf = self.op("Erf", [self.op("Mul", [x, self.const(2 ** -0.5)])])
        return self.op("Mul", [self.op("Mul", [x, self.const(0.5)]),
                               self.op("Add", [erf, self.const(1.0)])])


def bert_encoder(rng, vocab=1000, hidden=128, heads=4, layers=2, seq=13):
    """input_ids [1, seq] int64 -> hidden states [1, seq, hidden]."""
    e = _Encoder(rng, hidden, seq)
    words = e.const(rng.standard_normal((vocab, hidden)) * 0.5)
    x = e.op("Add", [e.op("Gather", [words, "input_ids"], axis=0),
                     e.const(rng.standard_normal((seq, hidden)) * 0.1)])
    x = e.layer_norm(x)
    for _ in range(layers):
        x = e.layer_norm(e.op("Add", [x, e.attention(x, heads)]))
        ffn = e.dense(e.gelu(e.dense(x, hidden, 4 * hidden)), 4 * hidden, hidden)
        x = e.layer_norm(e.op("Add", [x, ffn]))
    e.nodes.append(helper.make_node("Identity", [x], ["hidden"]))
    ids = helper.make_tensor_value_info("input_ids", TensorProto.INT64, [1, seq])
    return _model(e.nodes, [ids], [_info("hidden", [1, seq, hidden])], e.inits)


# -- the pass alone (no device) ---------------------------------------------
def test_pass_rules_ties_and_conversions():
    from clnet.frontend import load_model
    from clnet.passes.precision import CONVERT_OP, ValueStats, assign_precision

    model = attention_model(np.random.default_rng(0))
    graph = load_model(model.SerializeToString())
    stats = {"q": ValueStats(np.dtype(np.float32), 9000.0)}
    graph, storage, report = assign_precision(graph, stats)
    why = {r.name: r.why for r in report}
    assert storage["scaled"] is False and "softmax" in why["scaled"]
    assert storage["probs"] is False and "softmax" in why["probs"]
    assert storage["y"] is False and why["y"] == "graph output"
    assert storage["q"] is False and "9000" in why["q"]
    assert storage["k"] == storage["kt"], "a transpose copies bits: one storage"
    assert storage["v"] is True and storage["ctx"] is True
    # every node now sees one storage type across its run-time float inputs
    for node in graph.nodes:
        if node.op == CONVERT_OP:
            assert storage[node.inputs[0].name] != storage[node.outputs[0].name]
            continue
        runtime = [v for v in list(node.inputs) + list(node.outputs)
                   if v is not None and not v.is_const and v.name in storage]
        kinds = {storage[v.name] for v in runtime}
        assert len(kinds) == 1, f"{node.op} mixes storage: {[v.name for v in runtime]}"


def test_pass_keeps_views_with_their_source():
    from clnet.frontend import load_model
    from clnet.passes.precision import assign_precision

    nodes = [helper.make_node("Relu", ["x"], ["r"]),
             helper.make_node("Reshape", ["r", "shape"], ["flat"]),
             helper.make_node("Softmax", ["flat"], ["y"], axis=-1)]
    inits = [numpy_helper.from_array(np.array([1, -1], np.int64), "shape")]
    graph = load_model(_model(nodes, [_info("x", [3, 5, 7])], [_info("y", [1, 105])],
                              inits).SerializeToString())
    _, storage, report = assign_precision(graph)
    assert storage["r"] is False, "a view of a softmax input shares its fp32 memory"
    assert "softmax" in {r.name: r.why for r in report}["r"]


# -- on the device ----------------------------------------------------------
def test_overflow_is_inf_in_fp16_and_right_in_auto(device):
    import clnet

    rng = np.random.default_rng(0)
    model = overflow_model(rng)
    feed = {"x": (rng.standard_normal((3, 13)) * 40).astype(np.float32)}
    want = reference(model, feed)[0]
    data = model.SerializeToString()
    fp16 = clnet.InferenceSession(data, device=device, precision="fp16").run(None, feed)[0]
    assert not np.isfinite(fp16).all(), "the fp16 intermediate should have overflowed"
    session = clnet.InferenceSession(data, device=device, precision="auto",
                                     calibration=[feed])
    got = session.run(None, feed)[0]
    assert np.isfinite(got).all()
    assert np.abs(got - want).max() <= 1e-3 * np.abs(want).max()
    row = {r.name: r for r in session.precision_report}["h"]
    assert not row.half and row.max_abs > 65504


def test_attention_auto_within_1e2(device):
    import clnet

    rng = np.random.default_rng(1)
    model = attention_model(rng)
    feed = {"x": rng.standard_normal((1, 13, 16)).astype(np.float32)}
    want = reference(model, feed)[0]
    session = clnet.InferenceSession(model.SerializeToString(), device=device, precision="auto")
    got = session.run(None, feed)[0]
    assert np.abs(got - want).max() <= 1e-2 * np.abs(want).max()
    assert any(r.half for r in session.precision_report)


def test_resnet18_auto_memory_and_top1(device):
    import clnet
    from clnet.zoo import resnet18

    model = resnet18(batch=1, size=96, seed=0)
    x = np.random.default_rng(7).standard_normal((1, 3, 96, 96)).astype(np.float32)
    data = model.SerializeToString()
    fp32 = clnet.InferenceSession(data, device=device)
    want = fp32.run(None, {"input": x})[0]
    for precision in ("fp16", "auto"):
        session = clnet.InferenceSession(data, device=device, precision=precision)
        got = session.run(None, {"input": x})[0]
        ratio = session.device_bytes / fp32.device_bytes
        assert ratio <= 0.55, f"{precision}: device memory {ratio:.3f} x fp32"
        assert got.argmax() == want.argmax()
        assert np.abs(got - want).max() <= 1e-2 * np.abs(want).max()


def test_bert_encoder_auto_memory_and_error(device):
    import clnet

    rng = np.random.default_rng(11)
    model = bert_encoder(rng)
    feed = {"input_ids": rng.integers(0, 1000, (1, 13)).astype(np.int64)}
    want = reference(model, feed)[0]
    data = model.SerializeToString()
    fp32 = clnet.InferenceSession(data, device=device)
    assert np.abs(fp32.run(None, feed)[0] - want).max() <= 1e-4 * np.abs(want).max()
    for precision in ("fp16", "auto"):
        session = clnet.InferenceSession(data, device=device, precision=precision)
        got = session.run(None, feed)[0]
        ratio = session.device_bytes / fp32.device_bytes
        assert ratio <= 0.55, f"{precision}: device memory {ratio:.3f} x fp32"
        err = np.abs(got - want).max() / np.abs(want).max()
        assert err <= (1e-2 if precision == "auto" else 3e-2), f"{precision}: error {err:.3g}"


def test_digits_auto_keeps_every_top1(device):
    import clnet

    path = str(EXAMPLES / "digits.onnx")
    with np.load(EXAMPLES / "digits_samples.npz") as data:
        feeds = {k: data[k] for k in data.files}
    want = clnet.InferenceSession(path, device=device).run(None, feeds)[0]
    got = clnet.InferenceSession(path, device=device, precision="auto").run(None, feeds)[0]
    np.testing.assert_array_equal(got.argmax(axis=-1), want.argmax(axis=-1))


def test_fp16_compute_needs_the_extension(device):
    import clnet
    from clnet.errors import ClnetError

    data = overflow_model(np.random.default_rng(0)).SerializeToString()
    if device.fp16:
        clnet.InferenceSession(data, device=device, precision="fp16-compute")
        return
    with pytest.raises(ClnetError, match="cl_khr_fp16"):
        clnet.InferenceSession(data, device=device, precision="fp16-compute")


def test_compute_half_define_is_inert_without_fp16(device):
    """-DCOMPUTE_HALF alone must not enable half math (no HAS_FP16)."""
    import clnet.ops  # noqa: F401  (registers the ops)
    from clnet.graph import Graph, Node, Value
    from clnet.plan import build_plan

    if device.fp16:
        pytest.skip("the device has cl_khr_fp16: the guarded path is live here")
    x, y = Value("x", (3, 13), np.dtype(np.float32)), Value("y")
    graph = Graph([Node("Sigmoid", [x], [y])], [x], [y])
    plan = build_plan(graph, device, False, {}, extra_defines={"COMPUTE_HALF": True})
    feed = np.linspace(-3, 3, 39, dtype=np.float32).reshape(3, 13)
    got = plan.run([feed])[0]
    np.testing.assert_allclose(got, 1 / (1 + np.exp(-feed)), rtol=1e-6)


def test_cli_explain_precision(device, tmp_path):
    path = tmp_path / "attention.onnx"
    path.write_bytes(attention_model(np.random.default_rng(2)).SerializeToString())
    proc = subprocess.run(
        [sys.executable, "-m", "clnet.cli", "run", str(path), "--precision", "auto",
         "--explain-precision", "--repeat", "1", "--json", "--device", device.index],
        capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    rows = {r["tensor"]: r for r in report["precision_report"]}
    assert rows["probs"]["storage"] == "fp32" and "softmax" in rows["probs"]["why"]
    assert rows["v"]["storage"] == "fp16"
    assert report["precision"] == "auto"


def _cli_digits(device, *flags) -> dict:
    proc = subprocess.run(
        [sys.executable, "-m", "clnet.cli", "run", str(EXAMPLES / "digits.onnx"), "--input",
         str(EXAMPLES / "digits_samples.npz"), "--labels", str(EXAMPLES / "digits_labels.npy"),
         "--repeat", "1", "--json", "--device", device.index, *flags],
        capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def test_cli_auto_calibrates_on_given_inputs(device):
    fp32 = _cli_digits(device)
    auto = _cli_digits(device, "--precision", "auto", "--explain-precision")
    assert auto["top1"] == fp32["top1"]
    assert auto["device_bytes"] < 0.6 * fp32["device_bytes"]
    rows = auto["precision_report"]
    assert rows and all(r["max_abs"] is not None for r in rows if "/as_" not in r["tensor"])
    int8 = _cli_digits(device, "--int8-weights")
    assert int8["accuracy"] >= fp32["accuracy"] - 0.01


@pytest.fixture(scope="module")
def torch_families(tmp_path_factory):
    pytest.importorskip("torch")
    sys.path.insert(0, str(EXAMPLES.parent / "tools"))
    import torch_models

    return torch_models, tmp_path_factory.mktemp("auto_torch")


@pytest.mark.parametrize("name", ["mobilenet_v3_small", "yolo_tiny", "segnet", "bert_tiny"])
def test_torch_family_auto_matches_fp32(device, torch_families, name):
    """auto: same top-1 as fp32 on classifiers, <= 1e-2 relative error elsewhere."""
    import clnet
    from clnet.errors import UnsupportedOpError

    torch_models, folder = torch_families
    path, feeds = torch_models.export(name, folder)
    try:
        want = clnet.InferenceSession(str(path), device=device).run(None, feeds)
    except UnsupportedOpError as exc:
        pytest.skip(f"{name} does not run in fp32 yet: {exc}")
    session = clnet.InferenceSession(str(path), device=device, precision="auto")
    for got, ref in zip(session.run(None, feeds), want):
        err = np.abs(got.astype(np.float64) - ref).max() / np.abs(ref).max()
        assert err <= 1e-2, f"{name}: relative error {err:.3g}"
    if name.startswith("mobilenet"):
        np.testing.assert_array_equal(got.argmax(-1), ref.argmax(-1))


def _node_case(op_type, module, name):
    from test_quant import node_cases

    return next(c for c in node_cases(op_type, module) if c.name == name)


def _auto_error(case, device) -> float:
    import clnet

    names = [i.name for i in case.model.graph.input]
    inputs, outputs = case.data_sets[0]
    feed = dict(zip(names, inputs))
    got = clnet.InferenceSession(case.model.SerializeToString(), device=device,
                                 precision="auto", calibration=[feed]).run(None, feed)
    worst = 0.0
    for g, w in zip(got, outputs):
        w = np.asarray(w)
        if w.dtype.kind != "f":
            np.testing.assert_array_equal(g, w)
            continue
        assert (np.isfinite(g) == np.isfinite(w)).all(), case.name
        fin = np.isfinite(w)
        if fin.any():
            scale = max(float(np.abs(w[fin]).max()), 1e-6)
            worst = max(worst, float(np.abs(g[fin].astype(np.float64) - w[fin]).max()) / scale)
    return worst


@pytest.mark.parametrize("op_type, module, name", [
    ("Softmax", "softmax", "test_softmax_large_number_expanded"),
    ("ReduceLogSumExp", "reduce_log_sum_exp", "test_reduce_log_sum_exp_keepdims_example_expanded")])
def test_large_values_are_not_copied_to_half(device, op_type, module, name):
    """x ~ 1e4 stays fp32, and so does every node reading it (x - max(x))."""
    assert _auto_error(_node_case(op_type, module, name), device) <= 1e-2


@pytest.mark.slow
@pytest.mark.parametrize("sweep", ["one_per_op_set", "all"])
def test_node_cases_clnet_runs_also_run_under_auto(device, sweep):
    """ONNX node test cases that pass in fp32 stay within 1e-2 under auto.

    The default run checks the first passing case of every distinct set of
    op types (280 sets; the whole sweep took 4 of the suite's 15 minutes on
    a 2-core CI machine); CLNET_FULL_SWEEP=1 checks all of them.
    """
    import os
    import warnings

    import clnet
    from onnx.backend.test.case.node import collect_testcases

    if sweep == "all" and os.environ.get("CLNET_FULL_SWEEP") != "1":
        pytest.skip("the whole sweep runs with CLNET_FULL_SWEEP=1")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        cases = collect_testcases(None)
    checked, op_sets = 0, set()
    for case in cases:
        op_set = frozenset(n.op_type for n in case.model.graph.node)
        if sweep != "all" and op_set in op_sets:
            continue
        names = [i.name for i in case.model.graph.input]
        inputs, outputs = case.data_sets[0]
        try:
            got = clnet.InferenceSession(case.model.SerializeToString(), device=device).run(
                None, dict(zip(names, inputs)))
        except Exception:  # noqa: BLE001 (cases clnet cannot run are covered elsewhere)
            continue
        if not all(np.allclose(g, w, rtol=1e-3, atol=1e-5, equal_nan=True)
                   if np.asarray(w).dtype.kind == "f" else np.array_equal(g, w)
                   for g, w in zip(got, outputs)):
            continue
        assert _auto_error(case, device) <= 1e-2, case.name
        checked += 1
        op_sets.add(op_set)
    assert checked > (1000 if sweep == "all" else 200)
