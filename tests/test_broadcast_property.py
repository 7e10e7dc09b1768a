"""Property test: any ONNX-broadcastable pair of shapes gives numpy's answer."""
from __future__ import annotations

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from onnx import TensorProto, helper

import clnet


@st.composite
def broadcast_pair(draw):
    rank = draw(st.integers(1, 5))
    full = draw(st.lists(st.integers(1, 6), min_size=rank, max_size=rank))
    a = [d if draw(st.booleans()) else 1 for d in full]
    b = [d if draw(st.booleans()) else 1 for d in full]
    b = b[draw(st.integers(0, rank - 1)):]          # right-aligned lower rank
    return tuple(a), tuple(b)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(shapes=broadcast_pair(), op=st.sampled_from(["Add", "Sub", "Mul"]))
def test_broadcasting_matches_numpy(device, shapes, op):
    a_shape, b_shape = shapes
    graph = helper.make_graph(
        [helper.make_node(op, ["a", "b"], ["y"])], "g",
        [helper.make_tensor_value_info("a", TensorProto.FLOAT, a_shape),
         helper.make_tensor_value_info("b", TensorProto.FLOAT, b_shape)],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    rng = np.random.default_rng(0)
    a = rng.standard_normal(a_shape).astype(np.float32)
    b = rng.standard_normal(b_shape).astype(np.float32)
    (got,) = clnet.InferenceSession(model.SerializeToString(), device=device).run(
        None, {"a": a, "b": b})
    want = {"Add": np.add, "Sub": np.subtract, "Mul": np.multiply}[op](a, b)
    np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-6)
