"""InferenceSession: the Python face, shaped like onnxruntime's.

A session loads and optimises the graph once, uploads weights once (shared by
every plan), and keeps one Plan per input-shape signature.  ``run`` checks
the feeds, picks the plan and executes it.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Optional, Sequence

import numpy as np

from .device import Device, select_device
from .errors import ClnetError, DeviceMemoryError, InputError
from .frontend import load_model
from .passes import optimize
from .plan import Plan, build_plan

PRECISIONS = ("fp32", "fp16", "auto", "fp16-compute")
ONNX_TYPE_NAMES = {
    np.dtype(np.float32): "tensor(float)", np.dtype(np.float16): "tensor(float16)",
    np.dtype(np.float64): "tensor(double)", np.dtype(np.int64): "tensor(int64)",
    np.dtype(np.int32): "tensor(int32)", np.dtype(np.int8): "tensor(int8)",
    np.dtype(np.uint8): "tensor(uint8)", np.dtype(np.bool_): "tensor(bool)",
}


@dataclass(frozen=True)
class NodeArg:
    """Like onnxruntime.NodeArg: name, shape (ints, or str for symbolic), type."""
    name: str
    shape: list
    type: str
    dtype: Optional[np.dtype] = None


class InferenceSession:
    """Run an ONNX model on an OpenCL device.

    model: a path, the model's bytes, or an onnx.ModelProto.
    device: a selection string (see clnet.device), a Device, or None for
    CLNET_DEVICE / the automatic choice.
    precision: "fp32", or "fp16" for half-precision storage of every float
    tensor (arithmetic and accumulation stay fp32), "auto" for fp16 storage
    wherever a calibration run and the rules of clnet.passes.precision say it
    is safe (see ``precision_report``), or "fp16-compute" for fp16 storage
    and native half arithmetic (devices with cl_khr_fp16 only).
    calibration: feed dicts for "auto", or a function of the session that
    returns them (default: one seeded random feed).
    weight_int8: keep Conv/Gemm/MatMul weights as int8 with per-output-channel
    scales (4x smaller), dequantized on the device before each use.
    """

    def __init__(self, model, device=None, precision: str = "fp32", providers=None,
                 calibration=None, weight_int8: bool = False, **_ignored):
        start = time.perf_counter()
        if precision not in PRECISIONS:
            raise ClnetError(f"precision {precision!r} is not one of {', '.join(PRECISIONS)}")
        self.precision = precision
        self.device: Device = device if isinstance(device, Device) else select_device(device)
        self.graph = optimize(load_model(model))
        self._setup_precision(calibration, weight_int8)
        self._weights: dict = {}
        self._plans: dict = {}
        self.last_plan: Optional[Plan] = None
        static = all(v.is_static for v in self.graph.inputs)
        if static:
            self._plan_for(tuple(tuple(v.shape) for v in self.graph.inputs))
        self.load_s = time.perf_counter() - start

    # -- introspection -----------------------------------------------------
    def get_inputs(self) -> list:
        return [self._arg(v) for v in self.graph.inputs]

    def get_outputs(self) -> list:
        return [self._arg(v) for v in self.graph.outputs]

    @staticmethod
    def _arg(value) -> NodeArg:
        shape = [d if d is not None else "?" for d in (value.shape or ())]
        return NodeArg(value.name, shape, ONNX_TYPE_NAMES.get(value.dtype, str(value.dtype)),
                       value.dtype)

    @property
    def device_bytes(self) -> int:
        """Weights plus the arena of the largest plan built so far."""
        weights = sum(w.nbytes for w in self._weights.values())
        arena = max((p.arena_bytes for p in self._plans.values()), default=0)
        return weights + arena

    def _setup_precision(self, calibration, weight_int8: bool) -> None:
        """Storage options of every plan; for "auto", calibrate and assign."""
        self.precision_report: list = []
        self._store_half = self.precision in ("fp16", "fp16-compute")
        self._plan_options: dict = {"weight_int8": bool(weight_int8)}
        if self.precision == "fp16-compute":
            if not self.device.fp16:
                raise ClnetError(f"precision 'fp16-compute' needs native half arithmetic "
                                 f"(cl_khr_fp16), which {self.device.describe()} lacks; use "
                                 f"'fp16' (half storage, fp32 math) or 'auto'")
            self._plan_options["extra_defines"] = {"COMPUTE_HALF": True}
        if self.precision != "auto":
            return
        from .passes.precision import assign_precision, calibrate, random_feeds
        if callable(calibration):
            calibration = calibration(self)
        feeds = list(calibration) if calibration is not None else [random_feeds(self.graph)]
        stats = calibrate(self.graph, self.device, feeds)
        self.graph, storage, self.precision_report = assign_precision(self.graph, stats)
        self._plan_options["storage"] = storage

    # -- running -----------------------------------------------------------
    def run(self, output_names: Optional[Sequence[str]], input_feed: dict) -> list:
        feeds, signature = self._check_feeds(input_feed)
        plan = self._plan_for(signature)
        outputs = plan.run(feeds)
        if not output_names:
            return outputs
        index = {v.name: i for i, v in enumerate(self.graph.outputs)}
        missing = [n for n in output_names if n not in index]
        if missing:
            raise InputError(f"unknown output name(s) {missing}; the model's outputs are "
                             f"{list(index)}")
        return [outputs[index[n]] for n in output_names]

    def _check_feeds(self, feed: dict) -> tuple:
        if not isinstance(feed, dict):
            raise InputError("the feed must be a dict of input name -> array")
        names = [v.name for v in self.graph.inputs]
        unknown = [n for n in feed if n not in names]
        if unknown:
            raise InputError(f"unknown input name(s) {unknown}; the model's inputs are {names}")
        arrays, signature, symbols = [], [], {}
        for value in self.graph.inputs:
            if value.name not in feed:
                raise InputError(f"input {value.name!r} is missing from the feed "
                                 f"(expected shape {_fmt(value.shape)} {value.dtype})")
            arr = np.asarray(feed[value.name])
            want = value.dtype
            if want is not None and arr.dtype != want:
                raise InputError(f"input {value.name!r}: expected dtype {want}, got {arr.dtype} "
                                 f"(convert with .astype(np.{want.name}))")
            if value.shape is not None:
                if arr.ndim != len(value.shape):
                    raise InputError(f"input {value.name!r}: expected shape {_fmt(value.shape)} "
                                     f"(rank {len(value.shape)}), got {arr.shape}")
                for axis, (dim, got) in enumerate(zip(value.shape, arr.shape)):
                    if isinstance(dim, int) and dim != got:
                        raise InputError(f"input {value.name!r}: expected shape "
                                         f"{_fmt(value.shape)}, got {arr.shape} "
                                         f"(dim {axis} must be {dim})")
                    if isinstance(dim, str):
                        if symbols.setdefault(dim, got) != got:
                            raise InputError(f"input {value.name!r}: dim {axis} ({dim!r}) is "
                                             f"{got} but another input set it to "
                                             f"{symbols[dim]}")
            arrays.append(arr)
            signature.append(tuple(arr.shape))
        return arrays, tuple(signature)

    def _plan_for(self, signature: tuple) -> Plan:
        plan = self._plans.get(signature)
        if plan is None:
            graph = self.graph.copy()
            for value, shape in zip(graph.inputs, signature):
                value.shape = tuple(int(d) for d in shape)
                if value.dtype is None:
                    value.dtype = np.dtype(np.float32)
            try:
                plan = build_plan(graph, self.device, self._store_half, self._weights,
                                  **self._plan_options)
            except MemoryError as exc:
                raise DeviceMemoryError(f"out of host memory while planning: {exc}") from None
            self._plans[signature] = plan
        self.last_plan = plan
        return plan


def _fmt(shape) -> str:
    if shape is None:
        return "(any)"
    return "[" + ", ".join(str(d) if d is not None else "?" for d in shape) + "]"
