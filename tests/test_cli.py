"""The command line on the shipped example and on built models."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "examples"


def _cli(*args, env=None):
    return subprocess.run([sys.executable, "-m", "clnet.cli", *args], capture_output=True,
                          text=True, timeout=300, env=env)


def test_example_digits_with_labels(device):
    proc = _cli("run", str(EXAMPLE / "digits.onnx"), "--input",
                str(EXAMPLE / "digits_samples.npz"), "--labels",
                str(EXAMPLE / "digits_labels.npy"), "--device", device.index, "--repeat", "2")
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    predicted = next(l for l in lines if l.startswith("predicted:")).split()[1:]
    true = next(l for l in lines if l.startswith("true:")).split()[1:]
    labels = np.load(EXAMPLE / "digits_labels.npy")
    assert [int(t) for t in true] == labels.tolist()
    assert np.mean(np.array(predicted, int) == labels) >= 0.9
    assert "latency:" in proc.stdout


def test_json_report_and_random_inputs(device, tmp_path):
    out = tmp_path / "o.npz"
    proc = _cli("run", str(EXAMPLE / "digits.onnx"), "--shape", "input=5x1x8x8", "--json",
                "--device", device.index, "--repeat", "3", "--output", str(out), "--seed", "3")
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    for key in ("device", "precision", "outputs", "latency_ms", "load_s", "device_bytes"):
        assert key in report
    assert report["outputs"][0]["shape"] == [5, 10]
    assert report["device_bytes"] >= 38_000 * 4      # the weights alone
    assert report["latency_ms"] > 0
    assert np.load(out)["logits"].shape == (5, 10)


def test_policy_forces_a_variant_and_rejects_unknown_switches(device, tmp_path):
    outs = {}
    for name, extra in (("rule", ()), ("im2col", ("--policy", "conv_algorithm=im2col",
                                                   "--policy", "pool_rows=false"))):
        out = tmp_path / f"{name}.npz"
        proc = _cli("run", str(EXAMPLE / "digits.onnx"), "--shape", "input=3x1x8x8",
                    "--device", device.index, "--repeat", "1", "--output", str(out), *extra)
        assert proc.returncode == 0, proc.stderr
        outs[name] = np.load(out)["logits"]
    np.testing.assert_allclose(outs["im2col"], outs["rule"], rtol=1e-4, atol=1e-4)
    proc = _cli("run", str(EXAMPLE / "digits.onnx"), "--policy", "conv_algo=direct")
    assert proc.returncode != 0
    assert "conv_algorithm" in proc.stderr and len(proc.stderr.strip().splitlines()) == 1


def test_fp16_json_halves_weights(device):
    sizes = {}
    for precision in ("fp32", "fp16"):
        proc = _cli("run", str(EXAMPLE / "digits.onnx"), "--json", "--repeat", "1",
                    "--precision", precision, "--device", device.index)
        assert proc.returncode == 0, proc.stderr
        sizes[precision] = json.loads(proc.stdout)["weight_bytes"]
    assert sizes["fp16"] <= 0.55 * sizes["fp32"]


def test_devices_lists_platforms():
    proc = _cli("devices", "--json")
    if proc.returncode != 0 and "no OpenCL platform" in proc.stdout:
        return
    rows = json.loads(proc.stdout)
    assert sum(r["auto"] for r in rows) == 1
    for r in rows:
        assert r["type"] in ("GPU", "CPU", "ACCELERATOR", "CUSTOM", "OTHER")
        assert r["compute_units"] >= 1 and r["max_alloc_mib"] >= 1


def test_compile_kernels_then_prebuilt(device, tmp_path):
    folder = tmp_path / "bins"
    proc = _cli("compile-kernels", str(EXAMPLE / "digits.onnx"), "--out", str(folder),
                "--device", device.index, "--shape", "input=2x1x8x8")
    assert proc.returncode == 0, proc.stderr
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["programs"] and all((folder / p["binary"]).is_file()
                                        for p in manifest["programs"])
    env = dict(os.environ, CLNET_BINARIES=str(folder))
    proc = _cli("run", str(EXAMPLE / "digits.onnx"), "--shape", "input=2x1x8x8", "--repeat", "1",
                "--device", device.index, env=env)
    assert proc.returncode == 0, proc.stderr
