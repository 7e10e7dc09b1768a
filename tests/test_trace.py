"""Tracing: OpenCL event profiling, Chrome traces, per-op tables, --explain."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import onnx
from click.testing import CliRunner

import clnet
from clnet import trace, zoo
from clnet.cli import run_cmd
from conftest import pocl_platform


def _resnet(tmp_path, batch: int = 1):
    model = zoo.resnet18(batch=batch, size=32, classes=13)
    path = tmp_path / "resnet18.onnx"
    onnx.save(model, str(path))
    return model, path


def test_profiled_run_times_every_command(device, precision, tmp_path):
    model, _ = _resnet(tmp_path)
    session = clnet.InferenceSession(model.SerializeToString(), device=device,
                                     precision=precision, profile=True)
    x = np.random.default_rng(0).standard_normal((1, 3, 32, 32)).astype(np.float32)
    plain = clnet.InferenceSession(model.SerializeToString(), device=device,
                                   precision=precision).run(None, {"input": x})
    np.testing.assert_array_equal(session.run(None, {"input": x})[0], plain[0])
    records = session.last_records
    kinds = [r.kind for r in records]
    assert kinds.count("kernel") == len(session.last_plan.calls)
    assert kinds.count("upload") == 1 and kinds.count("download") == 1
    rows = trace.timed(records)
    assert len(rows) == len(records)
    assert all(end >= start for _, start, end in rows)
    table = trace.op_table(records)
    assert abs(sum(share for _, _, _, share, _ in table) - 1.0) < 1e-9
    conv = next(row for row in table if row[0] == "Conv")
    assert conv[4] is not None and conv[4] > 0          # GFLOP/s of Conv
    doc = trace.chrome_trace(records)
    spans = [e for e in doc["traceEvents"] if e["ph"] == "X"]
    names = {e["args"]["name"] for e in doc["traceEvents"] if e["ph"] == "M"}
    assert len(spans) == len(records) and min(e["ts"] for e in spans) == 0
    assert "copies" in names and any(n.startswith("queue") for n in names)


def test_cli_profile_table_trace_and_memory(device, tmp_path):
    _, path = _resnet(tmp_path)
    runner = CliRunner()
    args = [str(path), "--device", device.index, "--repeat", "1"]
    table = runner.invoke(run_cmd, args + ["--profile", "-", "--explain"])
    assert table.exit_code == 0, table.output
    assert "GFLOP/s" in table.output and "Conv" in table.output
    assert "single device" in table.output and "liveness lower bound" in table.output
    out = tmp_path / "trace.json"
    result = runner.invoke(run_cmd, args + ["--profile", str(out), "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.output.strip().splitlines()[-1])
    assert report["lower_bound_bytes"] > 0
    assert report["lower_bound_bytes"] <= report["arena_bytes"]
    events = json.loads(out.read_text())["traceEvents"]
    assert sum(e["ph"] == "X" for e in events) >= report["launches"]


PIPELINE_SCRIPT = """
import json
import numpy as np
import onnx
import clnet
from clnet import trace, zoo

model = zoo.resnet18(batch=1, size=32, classes=13).SerializeToString()
x = np.random.default_rng(0).standard_normal((1, 3, 32, 32)).astype(np.float32)
session = clnet.InferenceSession(model, devices="{p}:0,{p}:1", strategy="pipeline", profile=True)
want = clnet.InferenceSession(model, device="{p}:0").run(None, {"input": x})[0]
outs = list(session.stream([{"input": x}] * 6))
records = session.last_records
tracks = sorted({r.track for r in records})
try:  # a bad feed in the middle of a stream is reported, not a hang
    list(session.stream([{"input": x}, {"input": x[:, :, :16]}, {"input": x}]))
    bad = "no error"
except clnet.errors.InputError:
    bad = "InputError"
print("REPORT" + json.dumps(dict(
    tracks=tracks,
    overlap=trace.overlap_ns(records, "{p}:0 queue", "{p}:1 queue"),
    same=all(np.array_equal(o[0], want) for o in outs),
    stages=[p.dev.index for p in session.last_runner.plans], bad=bad,
    explain=trace.explain_lines(session.last_runner))))
"""


def test_pipeline_trace_overlaps_devices(device, tmp_path):
    p = pocl_platform()
    one, two = f"{p}:0", f"{p}:1"
    env = dict(os.environ, POCL_DEVICES="pthread pthread")
    env.pop("CLNET_DEVICE", None)
    proc = subprocess.run([sys.executable, "-c", PIPELINE_SCRIPT.replace("{p}", str(p))],
                          capture_output=True,
                          text=True, env=env, timeout=600)
    lines = [l for l in proc.stdout.splitlines() if l.startswith("REPORT")]
    assert proc.returncode == 0 and lines, proc.stderr[-3000:]
    report = json.loads(lines[-1][len("REPORT"):])
    assert report["same"]
    assert report["bad"] == "InputError"
    assert sorted(report["stages"]) == [one, two]
    assert {f"{one} copies", f"{two} copies", f"{one} queue 0",
            f"{two} queue 0"} <= set(report["tracks"])
    assert report["overlap"] > 0, "stages of different inputs never ran at the same time"
    assert len(report["explain"]) == 3 and "predicted" in report["explain"][0]

    _, path = _resnet(tmp_path)
    out = tmp_path / "pipe.json"
    proc = subprocess.run([sys.executable, "-m", "clnet.cli", "run", str(path), "--devices",
                           f"{one},{two}", "--strategy", "pipeline", "--explain", "--repeat", "3",
                           "--profile", str(out)], capture_output=True, text=True, env=env,
                          timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "measured ms" in proc.stdout and "trace:" in proc.stdout
    doc = json.loads(out.read_text())
    processes = {e["args"]["name"] for e in doc["traceEvents"] if e["name"] == "process_name"}
    assert processes == {f"device {one}", f"device {two}"}
