"""Recurrent and control-flow models exported from PyTorch match onnxruntime.

Skipped where torch is not installed."""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import onnx
import pytest

torch = pytest.importorskip("torch")
ort = pytest.importorskip("onnxruntime")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tools"))
import export_models  # noqa: E402

MODELS = list(export_models.models())
EXPECTED_OPS = {"crnn": {"LSTM"}, "gru_tagger": {"GRU"}, "scripted_control": {"If", "Loop"}}


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    folder = tmp_path_factory.mktemp("torch_rnn_models")
    return {name: export_models.export(name, folder) for name in MODELS}


@pytest.mark.parametrize("name", MODELS)
def test_model_matches_onnxruntime(device, exported, name):
    import clnet

    path, feeds = exported[name]
    ops = {n.op_type for n in onnx.load(str(path)).graph.node}
    assert EXPECTED_OPS[name] <= ops, f"{name}: export lacks {EXPECTED_OPS[name] - ops}"
    reference = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    session = clnet.InferenceSession(str(path), device=device)
    # the exports have symbolic dims: a second input size gets its own plan
    for feed in (feeds, export_models.other_feeds(name, feeds)):
        want = reference.run(None, feed)
        got = session.run(None, feed)
        for g, w in zip(got, want):
            assert g.shape == w.shape
            err = np.abs(g - w).max() / np.abs(w).max()
            assert err <= 1e-3, f"{name}: max |diff| {err:.2e} x max |ref|"
            assert (g.argmax(-1) == w.argmax(-1)).all()


def test_scripted_branch_follows_the_data(device, exported):
    """The If condition is computed at run time: inputs of +5 and -5 everywhere give
    h.mean() of either sign with these seeded weights, so both branches are taken."""
    import clnet

    path, feeds = exported["scripted_control"]
    session = clnet.InferenceSession(str(path), device=device)
    reference = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    for value in (5.0, -5.0):
        feed = {"x": np.full(feeds["x"].shape, value, np.float32)}
        got, = session.run(None, feed)
        want, = reference.run(None, feed)
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("name", MODELS)
def test_model_through_cli(device, exported, tmp_path, name):
    from test_torch_families import cli_matches_onnxruntime

    path, feeds = exported[name]
    cli_matches_onnxruntime(device, path, feeds, tmp_path)
