"""A quick CI slice of the ONNX backend node test suite, run through
clnet.onnx_backend exactly as tools/onnx_conformance.py runs it (in-process
here).  The slice: the cases of the op families below, minus the data types
clnet does not compute (bfloat16, float8, 2/4-bit, strings).  The whole suite
is tools/onnx_conformance.py's job; see docs/OPS.md."""
from __future__ import annotations

import importlib.util
import re
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
FAMILIES = {
    "elementwise": r"test_(add|sub|mul|div|pow|mod|neg|abs|sign|exp|log|sqrt|reciprocal|floor|"
                   r"ceil|round|erf|sin|cos|tan|asin|acos|atan|sinh|cosh|asinh|acosh|atanh|"
                   r"isnan|isinf|bitwise|max|min|mean|sum)",
    "activation": r"test_(relu|leakyrelu|prelu|sigmoid|hardsigmoid|hardswish|gelu|elu|selu|"
                  r"celu|softplus|softsign|mish|thresholdedrelu|shrink|swish|clip)",
    "compare": r"test_(equal|less|greater|and|or|xor|not|where)",
    "cast": r"test_cast",
    "reduce": r"test_(reduce|argmax|argmin|cumsum|cumprod|top_k|sce|nllloss|batchnorm)",
    "norm": r"test_(layer_norm|rms_norm|group_norm|instancenorm|lrn|lpnorm|l1norm|l2norm|mvn)",
    "softmax": r"test_(softmax|logsoftmax|hardmax)",
}
# Types and edge cases outside clnet's device types (see docs/OPS.md), other
# families' ops the prefixes catch (MaxPool, Expand), and the multi-node
# "_expanded" variants (slow; the full runner covers them).
EXCLUDE = re.compile(r"bfloat16|BFLOAT16|FLOAT8|FLOAT4|INT4|INT2|e8m0|string|STRING|"
                     r"shift_ge_width|negative_shift|maxpool|maxunpool|expand")


def _runner():
    spec = importlib.util.spec_from_file_location("onnx_conformance",
                                                  ROOT / "tools" / "onnx_conformance.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("onnx_conformance", module)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def runner():
    return _runner()


@pytest.fixture(scope="module")
def cases(runner):
    data_dir, _ = runner.resolve_data_dir(None)
    return data_dir, runner.find_cases(data_dir, None, None)


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_node_cases_pass(device, runner, cases, family, monkeypatch):
    monkeypatch.setenv("CLNET_DEVICE", device.index)
    data_dir, names = cases
    pattern = re.compile(FAMILIES[family])
    chosen = [n for n in names if pattern.match(n) and not EXCLUDE.search(n)]
    assert chosen, f"no node test cases for {family}"
    failures = []
    for name in chosen:
        result = runner.run_case(str(data_dir / name))
        if result["status"] != runner.PASSED:
            failures.append(f"{name}: {result['status']}: {result['reason']}")
    assert not failures, f"{len(failures)} of {len(chosen)} {family} cases:\n" + \
        "\n".join(failures)
