"""The tuner and the tuning database: verification, persistence, use at run time."""
import json

import numpy as np
import pytest
from click.testing import CliRunner
from onnx import TensorProto, helper, numpy_helper

import clnet
import clnet.tune_cli as tune_cli
from clnet import tuning
from clnet.cli import main


@pytest.fixture
def cache(tmp_path, monkeypatch):
    """An empty tuning cache."""
    monkeypatch.setenv("CLNET_CACHE_DIR", str(tmp_path))
    tuning.reload()
    yield tmp_path
    tuning.reload()


def _matmul_model(m=13, k=37, n=19, seed=0):
    w = np.random.default_rng(seed).standard_normal((k, n)).astype(np.float32)
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "w"], ["y"])], "mm",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [m, k])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [m, n])],
        [numpy_helper.from_array(w, "w")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    return model, w


def test_untuned_device_gets_class_defaults(device, cache):
    params = tuning.gemm_params(device, 512, 512, 512)
    assert params == tuning.class_defaults(device)
    assert tuning.gemm_params(device, 1, 1000, 768)["TM"] == 1


def test_saved_entries_survive_restart_and_nearest_wins(device, cache):
    good = {"TM": 3, "TN": 8, "VW": 8, "LSIZE": None, "M_FIRST": 1, "KSPLIT": 1}
    other = {"TM": 5, "TN": 16, "VW": 16, "LSIZE": [1, 1, 1], "M_FIRST": 0, "KSPLIT": 1}
    path = tuning.save_tuning(device, "gemm", [
        {"shape": (64, 64, 64), "params": good, "gflops": 1.0},
        {"shape": (2048, 2048, 2048), "params": other, "gflops": 2.0}])
    assert path.parent.parent == cache
    tuning.reload()                      # a new process reads the file again
    assert tuning.gemm_params(device, 50, 70, 60)["TN"] == 8
    assert tuning.gemm_params(device, 1500, 3000, 2000)["LSIZE"] == (1, 1, 1)
    assert tuning.gemm_params(device, 50, 70, 60, "gemm_fp16")["TN"] == 8  # fp32 fallback
    assert tuning.gemm_params(device, 512, 512, 512, "conv") == tuning.class_defaults(device)


@pytest.mark.parametrize("text", ["{not json", json.dumps({"version": 99}),
                                  json.dumps({"version": 1, "kernels": {"gemm": [
                                      {"shape": [1, 2, 3], "params": {"TM": 4, "TN": 12,
                                                                      "VW": 8}}]}})])
def test_corrupted_file_is_ignored_with_warning(device, cache, text):
    path = tuning.tuning_path(device)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    tuning.reload()
    with pytest.warns(RuntimeWarning, match="ignoring .*tuning file"):
        params = tuning.gemm_params(device, 13, 13, 13)
    assert params["TN"] == tuning.class_defaults(device)["TN"]


def test_runtime_uses_tuned_values(device, cache):
    tuned = {"TM": 3, "TN": 8, "VW": 4, "LSIZE": None, "M_FIRST": 1, "KSPLIT": 1}
    tuning.save_tuning(device, "gemm", [{"shape": (13, 19, 37), "params": tuned}])
    model, w = _matmul_model()
    session = clnet.InferenceSession(model.SerializeToString(), device=device)
    x = np.random.default_rng(1).standard_normal((13, 37)).astype(np.float32)
    (got,) = session.run(None, {"x": x})
    defines = [dict(l.defines) for l in session.last_plan.launches if l.entry == "gemm"]
    assert defines and defines[0]["TM"] == 3 and defines[0]["VW"] == 4 and defines[0]["M_FIRST"]
    np.testing.assert_allclose(got, x @ w, rtol=1e-4, atol=1e-4)


def test_tuner_verifies_every_candidate(device, monkeypatch):
    entries = tune_cli.tune_gemm(device, [(13, 37, 29, "conv")], space=tune_cli.QUICK_SPACE,
                                 reps=1)
    assert entries[0]["rejected"] == 0 and entries[0]["gflops"] > 0
    assert entries[0]["params"]["TM"] in (4, 6, 8)
    # a wrong reference: no candidate may win
    monkeypatch.setattr(tune_cli, "reference", lambda a, b: (a @ b) + 1.0)
    entries = tune_cli.tune_gemm(device, [(13, 37, 29, "gemm")], space=tune_cli.QUICK_SPACE,
                                 reps=1)
    assert "params" not in entries[0]
    assert entries[0]["rejected"] == entries[0]["tried"] > 0


def test_tune_cli_on_a_model_writes_the_device_file(device, cache, tmp_path):
    model, _ = _matmul_model(7, 33, 21)
    path = tmp_path / "mm.onnx"
    path.write_bytes(model.SerializeToString())
    result = CliRunner().invoke(main, ["tune", "--model", str(path), "--device", device.index,
                                       "--quick", "--reps", "1"])
    assert result.exit_code == 0, result.output
    assert "[1/1] gemm M=7 N=21 K=33" in result.output
    doc = json.loads(tuning.tuning_path(device).read_text())
    assert doc["kernels"]["gemm"][0]["shape"] == [7, 21, 33]


def test_tuner_times_conv_algorithms(device, cache, tmp_path, monkeypatch):
    """`clnet tune --model` times im2col against Winograd per 3x3 conv, verifies
    both against a float64 reference, and the runtime follows its pick."""
    from clnet import zoo

    conv = zoo.single_conv((1, 16, 20, 20), (24, 16, 3, 3),
                           {"kernel_shape": [3, 3], "pads": [1, 1, 1, 1]})
    path = tmp_path / "conv.onnx"
    path.write_bytes(conv.SerializeToString())
    result = CliRunner().invoke(main, ["tune", "--model", str(path), "--device", device.index,
                                       "--quick", "--reps", "1"])
    assert result.exit_code == 0, result.output
    assert "[1/1] conv M=24 N=400 K=144: im2col" in result.output
    doc = json.loads(tuning.tuning_path(device).read_text())
    (entry,) = doc["kernels"][tuning.CONV_ALGORITHM_KEY]
    assert entry["shape"] == [24, 400, 144] and entry["params"]["ALGO"] in tuning.CONV_ALGORITHMS
    tuning.reload()
    assert tuning.conv_algorithm(device, (24, 400, 144)) == entry["params"]["ALGO"]
    # a wrong reference: neither algorithm may win
    monkeypatch.setattr(tune_cli, "reference_conv", lambda *args: np.zeros((1, 24, 20, 20)))
    (entry,) = tune_cli.tune_conv_algorithms(device, conv, reps=1)
    assert "params" not in entry and entry["times"] == {}


def _write_tuning(device, doc) -> None:
    path = tuning.tuning_path(device)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(doc if isinstance(doc, str) else json.dumps(doc))
    tuning.reload()


def test_deeply_nested_file_is_ignored_with_warning(device, cache):
    _write_tuning(device, '{"version": 1, "kernels": ' + "[" * 100000 + "]" * 100000 + "}")
    with pytest.warns(RuntimeWarning, match="ignoring the tuning file"):
        params = tuning.gemm_params(device, 13, 13, 13)
    assert params["TN"] == tuning.class_defaults(device)["TN"]


@pytest.mark.parametrize("bad", [{"KSPLIT": -3}, {"KSPLIT": 10 ** 9}, {"TM": 10 ** 6},
                                 {"NT": 0}, {"LSIZE": [4096, 4096]}, {"GROUP_M": "many"},
                                 {"TN": -8}])
def test_out_of_range_entries_are_skipped_and_good_ones_kept(device, cache, bad):
    good = {"shape": [64, 64, 64], "params": {"TM": 4, "TN": 8, "VW": 4}, "gflops": 1.0}
    hostile = {"shape": [13, 13, 13], "params": dict({"TM": 4, "TN": 8, "VW": 4}, **bad)}
    _write_tuning(device, {"version": 1, "kernels": {"gemm": [hostile, good, "junk"]}})
    with pytest.warns(RuntimeWarning, match="ignoring entry 0 of 'gemm'"):
        table = tuning.load_tuning(device)
    assert [e["shape"] for e in table["gemm"]] == [(64, 64, 64)]
