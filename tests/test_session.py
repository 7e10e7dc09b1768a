"""InferenceSession API (onnxruntime-shaped) and the onnx backend face."""
from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

import clnet
from clnet.runtime import SessionOptions
from conftest import reference


def _mlp(batch="N"):
    rng = np.random.default_rng(0)
    w = rng.standard_normal((13, 7)).astype(np.float32)
    nodes = [helper.make_node("MatMul", ["x", "w"], ["h"]),
             helper.make_node("Relu", ["h"], ["r"]),
             helper.make_node("Softmax", ["r"], ["y"], axis=-1)]
    graph = helper.make_graph(
        nodes, "mlp", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [batch, 13])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [batch, 7]),
         helper.make_tensor_value_info("h", TensorProto.FLOAT, [batch, 7])],
        [numpy_helper.from_array(w, "w")])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])


def test_inputs_outputs_and_symbolic_batch(device):
    model = _mlp()
    session = clnet.InferenceSession(model.SerializeToString(), device=device)
    (inp,) = session.get_inputs()
    assert inp.name == "x" and inp.shape == ["N", 13] and inp.type == "tensor(float)"
    assert [o.name for o in session.get_outputs()] == ["y", "h"]
    rng = np.random.default_rng(1)
    for batch in (1, 5, 3, 5):
        x = rng.standard_normal((batch, 13)).astype(np.float32)
        got = session.run(None, {"x": x})
        want = reference(model, {"x": x})
        for g, w in zip(got, want):
            np.testing.assert_allclose(g, w, rtol=1e-4, atol=1e-5)
    assert len(session.plans.by_signature) == 3   # one plan per shape signature
    (h,) = session.run(["h"], {"x": x})
    assert h.shape == (5, 7)


def test_weights_shared_between_plans(device):
    session = clnet.InferenceSession(_mlp().SerializeToString(), device=device)
    session.run(None, {"x": np.ones((2, 13), np.float32)})
    before = len(session.plans.weights(session.device))
    session.run(None, {"x": np.ones((4, 13), np.float32)})
    assert len(session.plans.weights(session.device)) == before


def test_misspelt_keyword_is_a_clear_error(device):
    model = _mlp().SerializeToString()
    with pytest.raises(clnet.ClnetError) as info:
        clnet.InferenceSession(model, device=device, precison="fp16")
    message = str(info.value)
    assert "'precison'" in message and "did you mean 'precision'" in message
    assert "weight_int8" in message and "strategy" in message     # the valid ones listed
    options = SessionOptions(precision="fp16")
    session = clnet.InferenceSession(model, device=device, options=options, queues=2,
                                     providers=["CPUExecutionProvider"])
    assert session.precision == "fp16" and session.queues == 2
    with pytest.raises(clnet.ClnetError, match="precision 'fp8'"):
        SessionOptions(precision="fp8")
    assert clnet.InferenceSession(model, device, "fp16").precision == "fp16"   # positional
    with pytest.raises(clnet.ClnetError, match="SessionOptions"):
        clnet.InferenceSession(model, device=device, options={"precision": "fp16"})
    with pytest.raises(clnet.ClnetError, match="TM, TN and VW"):
        clnet.InferenceSession(model, device=device, policy={"gemm": {"TM": 4}})


def test_arena_reuses_memory(device):
    """Intermediates of a long chain share arena space by liveness."""
    nodes, prev = [], "x"
    for i in range(12):
        nodes.append(helper.make_node("Relu" if i % 2 else "Sigmoid", [prev], [f"t{i}"]))
        prev = f"t{i}"
    nodes[-1].output[0] = "y"
    graph = helper.make_graph(nodes, "chain",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [64, 127])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [64, 127])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    session = clnet.InferenceSession(model.SerializeToString(), device=device)
    x = np.random.default_rng(2).standard_normal((64, 127)).astype(np.float32)
    np.testing.assert_allclose(session.run(None, {"x": x})[0], reference(model, {"x": x})[0],
                               rtol=1e-5, atol=1e-6)
    plan = session.last_plan
    tensor = 64 * 127 * 4
    assert plan.arena_bytes <= 3.2 * tensor        # 13 tensors live in ~3 slots
    assert plan.lower_bound_bytes <= plan.arena_bytes


def test_onnx_backend_api(device):
    import clnet.onnx_backend as backend

    model = _mlp(batch=2)
    assert backend.supports_device("CPU")
    assert backend.is_compatible(model)
    x = np.random.default_rng(3).standard_normal((2, 13)).astype(np.float32)
    rep = backend.prepare(model, "CPU")
    outputs = rep.run([x])
    np.testing.assert_allclose(outputs[0], reference(model, {"x": x})[0], rtol=1e-4, atol=1e-6)
    outputs = backend.run_model(model, {"x": x})
    assert outputs[1].shape == (2, 7)


def test_model_proto_and_path_inputs(device, tmp_path):
    model = _mlp(batch=3)
    path = tmp_path / "m.onnx"
    onnx.save(model, str(path))
    x = np.ones((3, 13), np.float32)
    a = clnet.InferenceSession(model, device=device).run(None, {"x": x})
    b = clnet.InferenceSession(path, device=device).run(None, {"x": x})
    np.testing.assert_array_equal(a[0], b[0])


@pytest.mark.parametrize("sessions", [1, 2])
def test_threads_get_their_own_results(device, sessions):
    """4 threads x 60 runs, each with its own inputs (two batch sizes, so
    two plans): every output equals the serial result of the same input."""
    from concurrent.futures import ThreadPoolExecutor

    model = _mlp().SerializeToString()
    pool = [clnet.InferenceSession(model, device=device) for _ in range(sessions)]
    rng = np.random.default_rng(7)
    inputs = [rng.standard_normal((1 + i % 2 * 3, 13)).astype(np.float32) for i in range(16)]
    serial = [pool[0].run(None, {"x": x}) for x in inputs]

    def worker(thread: int) -> int:
        session, wrong = pool[thread % sessions], 0
        for k in range(60):
            i = (thread * 5 + k) % len(inputs)
            got = session.run(None, {"x": inputs[i]})
            wrong += any(not np.array_equal(g, w) for g, w in zip(got, serial[i]))
        return wrong

    with ThreadPoolExecutor(4) as threads:
        assert sum(threads.map(worker, range(4))) == 0
