"""Bad input gets a clear clnet error (and one CLI line), never a crash."""
from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
from onnx import TensorProto, helper, numpy_helper

import clnet
from clnet.errors import (DeviceError, InputError, KernelBuildError, ModelError,
                          UnsupportedOpError)


def _relu_model(shape=(1, 3, 4, 4)):
    graph = helper.make_graph([helper.make_node("Relu", ["x"], ["y"])], "g",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, shape)],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, shape)])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])


def _unsupported_model():
    nodes = [helper.make_node("Relu", ["x"], ["a"]),
             helper.make_node("MaxRoiPool", ["a", "r"], ["b"], name="my_pool",
                              pooled_shape=[1, 1]),
             helper.make_node("Multinomial", ["b"], ["y"], name="my_sampler")]
    graph = helper.make_graph(nodes, "g",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 3, 3]),
                               helper.make_tensor_value_info("r", TensorProto.FLOAT, [1, 5])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def _cli(*args):
    return subprocess.run([sys.executable, "-m", "clnet.cli", *args], capture_output=True,
                          text=True, timeout=300)


@pytest.fixture
def bad_files(tmp_path):
    good = _relu_model().SerializeToString()
    files = {
        "truncated": good[: len(good) // 2],
        "not_onnx": b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4,
        "empty": b"",
        "unsupported": _unsupported_model().SerializeToString(),
    }
    paths = {}
    for name, data in files.items():
        paths[name] = tmp_path / f"{name}.onnx"
        paths[name].write_bytes(data)
    paths["good"] = tmp_path / "good.onnx"
    paths["good"].write_bytes(good)
    return paths


@pytest.mark.parametrize("kind", ["truncated", "not_onnx", "empty"])
def test_malformed_files_raise_model_error(bad_files, kind):
    with pytest.raises(ModelError):
        clnet.InferenceSession(str(bad_files[kind]))


def test_missing_file():
    with pytest.raises(ModelError, match="does not exist"):
        clnet.InferenceSession("no/such/model.onnx")


def test_unsupported_ops_are_all_named(bad_files):
    with pytest.raises(UnsupportedOpError) as info:
        clnet.InferenceSession(str(bad_files["unsupported"]))
    msg = str(info.value)
    assert "my_pool" in msg and "MaxRoiPool" in msg and "my_sampler" in msg \
        and "Multinomial" in msg
    assert "opset 17" in msg


def test_wrong_inputs(device, bad_files):
    session = clnet.InferenceSession(str(bad_files["good"]), device=device)
    x = np.zeros((1, 3, 4, 4), np.float32)
    with pytest.raises(InputError, match="'x'.*shape"):
        session.run(None, {"x": np.zeros((1, 3, 4, 5), np.float32)})
    with pytest.raises(InputError, match="dtype"):
        session.run(None, {"x": x.astype(np.float64)})
    with pytest.raises(InputError, match="unknown input"):
        session.run(None, {"x": x, "z": x})
    with pytest.raises(InputError, match="missing"):
        session.run(None, {})
    with pytest.raises(InputError, match="unknown output"):
        session.run(["nope"], {"x": x})
    np.testing.assert_array_equal(session.run(["y"], {"x": x - 1})[0], np.zeros_like(x))


def test_bad_device_selection():
    with pytest.raises(DeviceError):
        clnet.select_device("no-such-device-anywhere")
    with pytest.raises(DeviceError):
        clnet.select_device("77:3")


def test_kernel_build_error_has_log(device, tmp_path, monkeypatch):
    from clnet import compile as clc

    monkeypatch.setattr(clc, "kernel_dir", lambda: tmp_path)
    clc.kernel_source.cache_clear()
    (tmp_path / "common.h").write_text("")
    (tmp_path / "broken.cl").write_text("__kernel void broken(__global float *x) { x[0] = y; }")
    try:
        with pytest.raises(KernelBuildError) as info:
            clc.build_program(device, "broken", {"SOME_OPTION": 3})
    finally:
        clc.kernel_source.cache_clear()
    msg = str(info.value)
    assert "broken.cl" in msg and device.name in msg and "-DSOME_OPTION=3" in msg
    assert "y" in msg.split("\n", 1)[1]          # the build log follows


def test_external_data_cannot_escape_folder(tmp_path):
    model = _relu_model()
    weight = numpy_helper.from_array(np.ones(4, np.float32), "w")
    weight.data_location = TensorProto.EXTERNAL
    entry = weight.external_data.add()
    entry.key, entry.value = "location", "../../etc/passwd"
    weight.ClearField("raw_data")
    model.graph.initializer.append(weight)
    path = tmp_path / "m.onnx"
    path.write_bytes(model.SerializeToString())
    with pytest.raises(ModelError, match="leaves the model's folder"):
        clnet.InferenceSession(str(path))


@pytest.mark.parametrize("kind", ["truncated", "not_onnx", "unsupported"])
def test_cli_one_line_errors(bad_files, kind):
    proc = _cli("run", str(bad_files[kind]))
    assert proc.returncode != 0
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("clnet: error:"), proc.stderr
    assert "Traceback" not in proc.stderr


def test_cli_wrong_shape(device, bad_files, tmp_path):
    np.save(tmp_path / "x.npy", np.zeros((1, 3, 5, 4), np.float32))
    proc = _cli("run", str(bad_files["good"]), "--input", f"x={tmp_path / 'x.npy'}",
                "--device", device.index)
    assert proc.returncode != 0
    assert proc.stderr.strip().count("\n") == 0 and "expected shape" in proc.stderr
    debug = _cli("run", str(bad_files["good"]), "--input", f"x={tmp_path / 'x.npy'}", "--debug",
                 "--device", device.index)
    assert debug.returncode != 0 and "Traceback" in debug.stderr


def test_out_of_device_memory_is_a_clear_error(device):
    """Activations larger than the device's memory raise DeviceMemoryError."""
    from clnet.errors import DeviceMemoryError

    count = device.global_mem // 2**31 + 2          # outputs of 2 GiB each
    nodes = [helper.make_node("Expand", ["x", "shape"], [f"y{i}"]) for i in range(count)]
    graph = helper.make_graph(
        nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 1])],
        [helper.make_tensor_value_info(f"y{i}", TensorProto.FLOAT, None) for i in range(count)],
        [numpy_helper.from_array(np.array([1 << 15, 1 << 14], np.int64), "shape")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    with pytest.raises(DeviceMemoryError, match="MiB"):
        clnet.InferenceSession(model.SerializeToString(), device=device)


@pytest.mark.parametrize("op, attrs, named", [
    ("MaxPool", {"kernel_shape": [2, 2], "pads": [-1, 0, 0, 0]}, "pads"),
    ("AveragePool", {"kernel_shape": [3, 3], "pads": [0, 0, 0, -2]}, "pads"),
    ("MaxPool", {"kernel_shape": [0, 2]}, "kernel_shape"),
    ("AveragePool", {"kernel_shape": [2, 2], "strides": [1]}, "strides"),
    ("Conv", {"kernel_shape": [3, 3], "pads": [1, 1, -1, 1]}, "pads"),
    ("Conv", {"kernel_shape": [3, 3], "dilations": [0, 1]}, "dilations"),
])
def test_window_attributes_outside_the_spec(device, op, attrs, named):
    """Negative pads once let a pool write past its output (heap corruption)."""
    inits = [numpy_helper.from_array(np.ones((2, 1, 3, 3), np.float32), "w")] if op == "Conv" else []
    node = helper.make_node(op, ["x", "w"] if op == "Conv" else ["x"], ["y"], **attrs)
    graph = helper.make_graph([node], "g", [helper.make_tensor_value_info(
        "x", TensorProto.FLOAT, [1, 1, 8, 8])], [helper.make_tensor_value_info(
            "y", TensorProto.FLOAT, None)], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    with pytest.raises(ModelError, match=f"{op}.*attribute {named}="):
        clnet.InferenceSession(model.SerializeToString(), device=device)


@pytest.mark.parametrize("op", ["GlobalAveragePool", "GlobalMaxPool"])
def test_sizes_past_32_bit_indexing_are_refused_before_allocating(device, op):
    """An input of 2.5e9 elements: a clnet error at planning, no allocation."""
    graph = helper.make_graph([helper.make_node(op, ["x"], ["y"])], "g",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT,
                                                             [1, 1, 50000, 50000])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    with pytest.raises(UnsupportedOpError, match="32-bit"):
        clnet.InferenceSession(model.SerializeToString(), device=device)


def test_batchnorm_with_mismatched_parameters_is_a_model_error(device):
    """BatchNorm folding skips malformed parameters (it raised a bare
    ValueError); the BatchNorm lowering then names the node."""
    inits = [numpy_helper.from_array(np.ones((4, 1, 3, 3), np.float32), "w")]
    inits += [numpy_helper.from_array(np.ones(n, np.float32), name)
              for name, n in (("g", 4), ("b", 3), ("m", 4), ("v", 4))]
    nodes = [helper.make_node("Conv", ["x", "w"], ["c"]),
             helper.make_node("BatchNormalization", ["c", "g", "b", "m", "v"], ["y"])]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info(
        "x", TensorProto.FLOAT, [1, 1, 8, 8])], [helper.make_tensor_value_info(
            "y", TensorProto.FLOAT, None)], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    with pytest.raises(ModelError, match="BatchNormalization"):
        clnet.InferenceSession(model.SerializeToString(), device=device)


def test_cli_refuses_random_input_too_large_for_the_host(tmp_path):
    """A declared dim of 2^31 asked numpy for 384 GiB (fuzz seed 2, case 229)."""
    path = tmp_path / "huge.onnx"
    path.write_bytes(_relu_model(("N", 3, 8, 2 ** 31)).SerializeToString())
    proc = _cli("run", str(path))
    assert proc.returncode == 1, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("clnet: error: input 'x'") \
        and "GiB" in lines[0] and "--shape" in lines[0]
