"""tools/fuzz_models.py: mutated models get a clean clnet error or run;
never another exception, a crash by signal or a hang (issue 18)."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

TOOLS = Path(__file__).resolve().parents[1] / "tools"


def _fuzz(tmp_path, device, *args) -> dict:
    report = tmp_path / "report.json"
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))
    if device is not None:
        env["CLNET_DEVICE"] = device.index
    proc = subprocess.run([sys.executable, str(TOOLS / "fuzz_models.py"), "--json", str(report),
                           "--save", str(tmp_path / "defects"), *args],
                          capture_output=True, text=True, timeout=900, env=env)
    assert report.is_file(), proc.stderr[-2000:]
    result = json.loads(report.read_text())
    assert not result["defects"], proc.stdout[-4000:]
    assert proc.returncode == 0
    return result


def test_fuzz_200_cases(tmp_path, device):
    """About 30 s on a 2-core PoCL host: children are forked from a process
    that has clnet imported; every 50th case goes through the CLI."""
    result = _fuzz(tmp_path, device, "--cases", "200", "--seed", "0", "--cli-every", "50")
    assert result["counts"].get("clnet-error", 0) > 100
    assert result["counts"].get("success", 0) > 0       # some mutations still run


def test_seed_models_run_like_onnxruntime(device):
    ort = pytest.importorskip("onnxruntime")
    import numpy as np

    import clnet

    sys.path.insert(0, str(TOOLS))
    try:
        import fuzz_models
        import fuzz_mutate
    finally:
        sys.path.remove(str(TOOLS))
    for make in fuzz_mutate.SEEDS.values():
        data = make().SerializeToString()
        session = clnet.InferenceSession(data, device=device)
        feeds = fuzz_models.feeds_for(session, 0)
        want = ort.InferenceSession(data, providers=["CPUExecutionProvider"]).run(None, feeds)
        np.testing.assert_allclose(session.run(None, feeds)[0], want[0], rtol=1e-4, atol=1e-5)
