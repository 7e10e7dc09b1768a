"""tools/op_cases.py's models load in onnxruntime, and `bench_nodes.py --ops`
gives a row per case that matches onnxruntime."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest

ort = pytest.importorskip("onnxruntime")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tools"))
import bench_nodes  # noqa: E402
import op_cases  # noqa: E402


def test_cases_are_named_once_and_load_in_onnxruntime():
    cases = op_cases.all_cases()
    names = [c.name for c in cases]
    assert len(names) == len(set(names)), sorted(n for n in names if names.count(n) > 1)
    for case in cases:
        ort.InferenceSession(case.model().SerializeToString(),
                             providers=["CPUExecutionProvider"])


@pytest.mark.parametrize("name", ["Add tiny 1x16", "Softmax 1x10 axis -1"])
def test_op_row_times_and_checks_a_case(device, name):
    case = next(c for c in op_cases.all_cases() if c.name == name)
    row = bench_nodes.op_row(case, device, runs=4, threads=1)
    assert "error" not in row, row
    assert row["rel_err"] < 1e-5
    assert row["launches"] >= 1 and row["kernel_ms"] > 0.0
    assert bench_nodes.flag(row) in ("", "overhead", "KERNEL")
