"""Shared fixtures: the OpenCL device under test and model-checking helpers.

The device comes from CLNET_DEVICE (default: the automatic choice); every
device test skips with a reason when no OpenCL platform exists.
"""
from __future__ import annotations

import os
import re

import numpy as np
import pytest

# The suite builds hundreds of one-off programs: fetching each binary for the
# on-disk kernel cache would cost PoCL 0.3-0.8 s of compiling apiece for
# nothing (tests/test_compile.py turns the cache on where it is the subject).
os.environ.setdefault("CLNET_KERNEL_CACHE", "0")


@pytest.fixture(scope="session")
def device():
    from clnet.device import list_devices, select_device
    from clnet.errors import DeviceError

    try:
        if not list_devices():
            pytest.skip("no OpenCL platform found")
        return select_device(os.environ.get("CLNET_DEVICE") or None)
    except DeviceError as exc:
        pytest.skip(f"no usable OpenCL device: {exc}")


@pytest.fixture(params=["fp32", "fp16"])
def precision(request):
    """Both storage modes: every kernel must be right in each."""
    return request.param


TOLERANCE = {"fp32": 1e-4, "fp16": 2e-2}


def run_both(model, feeds: dict, device, precision: str = "fp32"):
    """(clnet outputs, reference outputs) of one model.

    The reference is onnxruntime where installed, else onnx.reference.
    """
    import clnet

    data = model.SerializeToString()
    session = clnet.InferenceSession(data, device=device, precision=precision)
    got = session.run(None, feeds)
    return got, reference(model, feeds)


def reference(model, feeds: dict) -> list:
    try:
        import onnxruntime as ort
    except ImportError:
        ort = None
    if ort is not None:
        try:
            return _ort_run(ort, model, feeds)
        except Exception:  # an op or opset onnxruntime lacks: use the ONNX reference
            pass
    from onnx.reference import ReferenceEvaluator
    return ReferenceEvaluator(model).run(None, feeds)


def _ort_run(ort, model, feeds: dict) -> list:
    """onnxruntime's outputs; a model stamped with a newer IR version than this
    onnxruntime reads (onnx.helper stamps its own) is retried at its maximum."""
    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    try:
        session = ort.InferenceSession(model.SerializeToString(), opts,
                                       providers=["CPUExecutionProvider"])
    except Exception as exc:
        found = re.search(r"max supported IR version: (\d+)", str(exc))
        if not found:
            raise
        older = type(model)()
        older.CopyFrom(model)
        older.ir_version = int(found.group(1))
        session = ort.InferenceSession(older.SerializeToString(), opts,
                                       providers=["CPUExecutionProvider"])
    return session.run(None, feeds)


def pocl_platform() -> int:
    """Index of the first PoCL platform (the multi-device tests make several
    devices of it with POCL_DEVICES); skips when there is none."""
    from clnet.device import list_devices
    for dev in list_devices():
        if "portable computing language" in dev.platform_name.lower():
            return dev.platform_index
    pytest.skip("needs a PoCL platform (POCL_DEVICES gives it several devices)")


def assert_close(got, want, precision: str = "fp32", rtol: float = None) -> None:
    """Max abs difference within rtol x max |reference| (at least 1e-6 absolute)."""
    rtol = TOLERANCE[precision] if rtol is None else rtol
    for g, w in zip(got, want):
        w = np.asarray(w)
        assert g.shape == w.shape, f"shape {g.shape} != reference {w.shape}"
        if w.dtype.kind in "biu":
            np.testing.assert_array_equal(g, w)
            continue
        scale = max(float(np.abs(w).max()) if w.size else 0.0, 1e-6)
        err = float(np.abs(g.astype(np.float64) - w).max()) if w.size else 0.0
        assert err <= rtol * scale, f"max |diff| {err:.3g} > {rtol} x {scale:.3g}"


def node_ops(graph) -> list:
    """The graph's op names, fused elementwise chains listed as their nodes."""
    return [op for n in graph.nodes
            for op in ([m.op for m in n.body] if n.body is not None else [n.op])]
