"""A plan too large for the device (or, on a CPU device, for the host's RAM)
raises DeviceMemoryError before anything is enqueued; the session stays
usable for smaller inputs (issue 18)."""
from __future__ import annotations

import numpy as np
import pytest
from onnx import TensorProto, helper, numpy_helper

import clnet
from clnet.errors import DeviceMemoryError
from clnet.memory import HOST_MEMORY_SHARE, host_available_bytes

WIDTH = 4096


def _wide_model(n_outputs: int):
    """x [batch, 16] times n_outputs [16, WIDTH] weights: each output is
    batch x WIDTH floats, 256 times the input."""
    rng = np.random.default_rng(0)
    weights = [numpy_helper.from_array(rng.standard_normal((16, WIDTH)).astype(np.float32),
                                       f"w{i}") for i in range(n_outputs)]
    nodes = [helper.make_node("MatMul", ["x", f"w{i}"], [f"y{i}"]) for i in range(n_outputs)]
    graph = helper.make_graph(
        nodes, "wide", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 16])],
        [helper.make_tensor_value_info(f"y{i}", TensorProto.FLOAT, ["batch", WIDTH])
         for i in range(n_outputs)], weights)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), weights


def _check_small_batch(session, weights):
    x = np.random.default_rng(1).standard_normal((3, 16)).astype(np.float32)
    for got, w in zip(session.run(None, {"x": x}), weights):
        np.testing.assert_allclose(got, x @ numpy_helper.to_array(w), rtol=1e-4, atol=1e-4)


def _layout(device, total_bytes: float) -> tuple:
    """(outputs, batch) making about total_bytes of outputs, each within the
    device's max allocation and the kernels' 32-bit indexing."""
    per_output = 0.8 * min(device.max_alloc, 4 * 2 ** 31)
    n_outputs = int(-(-total_bytes // per_output))
    return n_outputs, int(total_bytes // (n_outputs * WIDTH * 4))


def test_batch_beyond_device_memory_is_refused_then_small_batch_runs(device):
    n_outputs, batch = _layout(device, 2 * device.global_mem)
    model, weights = _wide_model(n_outputs)
    session = clnet.InferenceSession(model.SerializeToString(), device=device)
    x = np.broadcast_to(np.float32(1), (batch, 16))     # no host copy of the huge feed
    with pytest.raises(DeviceMemoryError) as info:
        session.run(None, {"x": x})
    text = str(info.value)
    assert device.name in text and "MiB" in text and "smaller batch" in text
    _check_small_batch(session, weights)


def test_batch_beyond_host_ram_is_refused_on_a_cpu_device(device):
    """Within the device's reported memory and max allocation, but more than
    the host has free: PoCL would abort the process."""
    if device.type != "CPU":
        pytest.skip("device memory is host RAM only on CPU devices")
    available = host_available_bytes()
    if available is None:
        pytest.skip("the host does not report its available memory")
    low, high = HOST_MEMORY_SHARE * available, device.global_mem - (64 << 20)
    if low >= high * 0.97:
        pytest.skip(f"available host memory {available >> 20} MiB is about the device's "
                    f"{device.global_mem >> 20} MiB")
    n_outputs, batch = _layout(device, (low + high) / 2)
    model, weights = _wide_model(n_outputs)
    session = clnet.InferenceSession(model.SerializeToString(), device=device)
    x = np.broadcast_to(np.float32(1), (batch, 16))
    with pytest.raises(DeviceMemoryError, match="host RAM"):
        session.run(None, {"x": x})
    _check_small_batch(session, weights)
