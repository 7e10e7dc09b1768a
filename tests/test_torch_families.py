"""Model families exported from PyTorch match onnxruntime through clnet.

Skipped where torch is not installed (CI installs the CPU build)."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
ort = pytest.importorskip("onnxruntime")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tools"))
import torch_models  # noqa: E402

FAMILIES = list(torch_models.families())
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning",
                                        "ignore::torch.jit.TracerWarning")


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    folder = tmp_path_factory.mktemp("torch_models")
    return {name: torch_models.export(name, folder) for name in FAMILIES}


@pytest.mark.parametrize("name", FAMILIES)
def test_family_matches_onnxruntime(device, exported, name):
    import clnet

    path, feeds = exported[name]
    want = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(None, feeds)
    got = clnet.InferenceSession(str(path), device=device).run(None, feeds)
    for g, w in zip(got, want):
        assert g.shape == w.shape
        err = np.abs(g - w).max() / np.abs(w).max()
        assert err <= 1e-3, f"{name}: max |diff| {err:.2e} x max |ref|"
        if name.startswith("mobilenet"):
            assert (g.argmax(-1) == w.argmax(-1)).all()


def cli_matches_onnxruntime(device, path, feeds, folder) -> None:
    """clnet-run --input/--output on an exported model agrees with onnxruntime."""
    np.savez(folder / "in.npz", **feeds)
    proc = subprocess.run([sys.executable, "-m", "clnet.cli", "run", str(path), "--input",
                           str(folder / "in.npz"), "--output", str(folder / "out.npz"),
                           "--json", "--repeat", "1", "--device", device.index],
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    names = [o.name for o in session.get_outputs()]
    got = np.load(folder / "out.npz")
    for name, want, listed in zip(names, session.run(None, feeds), report["outputs"]):
        assert listed["shape"] == list(want.shape)
        assert np.abs(got[name] - want).max() <= 1e-3 * np.abs(want).max()


@pytest.mark.parametrize("name", FAMILIES)
def test_family_through_cli(device, exported, tmp_path, name):
    path, feeds = exported[name]
    cli_matches_onnxruntime(device, path, feeds, tmp_path)
