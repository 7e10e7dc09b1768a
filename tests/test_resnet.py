"""ResNet-18 (opset 13, unfolded BatchNorm, 224x224, batch 1) against onnxruntime."""
from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from conftest import reference

ort = pytest.importorskip("onnxruntime")


@pytest.fixture(scope="module")
def resnet(tmp_path_factory):
    from clnet.zoo import resnet18

    folder = tmp_path_factory.mktemp("resnet")
    model = resnet18(batch=1, size=224, seed=0)
    path = folder / "resnet18.onnx"
    path.write_bytes(model.SerializeToString())
    x = np.random.default_rng(7).standard_normal((1, 3, 224, 224)).astype(np.float32)
    np.save(folder / "x.npy", x)
    return model, path, x, reference(model, {"input": x})[0]


def test_resnet18_fp32_matches_onnxruntime(device, resnet):
    import clnet

    model, path, x, want = resnet
    got = clnet.InferenceSession(str(path), device=device).run(None, {"input": x})[0]
    assert got.shape == want.shape == (1, 1000)
    err = np.abs(got - want).max() / np.abs(want).max()
    assert err <= 1e-4, f"relative error {err:.3g}"


def test_resnet18_fp16_storage(device, resnet):
    import clnet

    model, path, x, want = resnet
    session = clnet.InferenceSession(str(path), device=device, precision="fp16")
    got = session.run(None, {"input": x})[0]
    err = np.abs(got - want).max() / np.abs(want).max()
    assert err <= 2e-2, f"relative error {err:.3g}"
    assert got.argmax() == want.argmax()


def test_resnet18_through_cli(device, resnet, tmp_path):
    model, path, x, want = resnet
    out = tmp_path / "out.npz"
    proc = subprocess.run(
        [sys.executable, "-m", "clnet.cli", "run", str(path), "--input",
         f"input={path.parent / 'x.npy'}", "--repeat", "1", "--output", str(out), "--json",
         "--device", device.index],
        capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    assert report["outputs"] == [{"name": "logits", "shape": [1, 1000], "dtype": "float32"}]
    assert report["device_bytes"] > 40e6        # ~46 MB of fp32 weights at least
    got = np.load(out)["logits"]
    assert np.abs(got - want).max() / np.abs(want).max() <= 1e-4
