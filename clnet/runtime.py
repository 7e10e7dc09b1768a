"""InferenceSession: the Python face, shaped like onnxruntime's.

A session loads and optimises the graph once, uploads weights once (shared by
every plan), and keeps one Plan per input-shape signature.  ``run`` checks
the feeds, picks the plan and executes it.
"""
from __future__ import annotations

import difflib
import threading
import time
from dataclasses import dataclass, fields, replace
from typing import Optional, Sequence

import numpy as np
import pyopencl as cl

from .device import Device
from .errors import ClnetError, DeviceMemoryError, InputError
from .frontend import load_model
from .ops.registry import host_ops, shape_inputs
from .passes import optimize
from .plan import Plan, build_plan
from .policy import KernelPolicy
from .runners import Finished, RunnerOptions, make_runner
from .schedule import STRATEGIES, resolve_devices

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


class KeyedShape(tuple):
    """A signature entry: the input's shape, plus its value for shape inputs."""

    def __new__(cls, shape, data: np.ndarray):
        entry = super().__new__(cls, shape)
        entry.data = np.array(data)
        entry.value_key = (entry.data.dtype.str, entry.data.tobytes())
        return entry

    def __eq__(self, other):
        return tuple.__eq__(self, other) and self.value_key == getattr(other, "value_key", None)

    def __hash__(self):
        return hash((tuple(self), self.value_key))


def value_keyed_inputs(graph) -> set:
    """Names of graph inputs whose values decide a shape: fed where ONNX
    decides one, or computed into such a place (not through Shape/Size,
    which read only shapes), or fed directly to a host op (only directly:
    the host must not compute the float work upstream of them).  A graph
    input in such a place gets a plan per value, in which it is a constant."""
    deciding, direct, host = set(), set(), host_ops()
    for node in graph.nodes:
        for index in shape_inputs(node.op) if not node.domain else ():
            value = node.input(index)
            if value is not None:
                (direct if node.op in host else deciding).add(value)
    deciding = _sources(graph, deciding)
    names = {v.name for v in graph.inputs}
    return {v.name for v in deciding | direct if v.name in names} | _condition_inputs(graph)


def _sources(graph, values: set) -> set:
    """`values` and every value they are computed from (not through Shape/Size)."""
    found = set(values)
    for node in reversed(graph.nodes):
        if node.op not in ("Shape", "Size") and any(v in found for v in node.outputs):
            found.update(v for v in node.inputs if v is not None)
    return found


MAX_CONDITION_ELEMENTS = 16   # larger integer inputs are data, never keyed by value


def _condition_inputs(graph) -> set:
    """Small integer/bool graph inputs an If condition is computed from (a
    sample rate, a mode flag).  Keyed by value, the condition is a constant
    and only the taken branch is inlined: the other may not even be valid
    for the fed shapes (silero-vad's 8 kHz branch on a 16 kHz chunk)."""
    conditions = {node.input(0) for node in graph.nodes if node.op == "If" and not node.domain}
    sources = _sources(graph, conditions - {None})
    return {v.name for v in graph.inputs
            if v in sources and v.dtype is not None and v.dtype.kind in "biu"
            and v.is_static and v.size <= MAX_CONDITION_ELEMENTS}


def bind_signature(graph, signature: tuple) -> None:
    """Give a graph copy's inputs the signature's shapes (and keyed values)."""
    for value, shape in zip(graph.inputs, signature):
        value.shape = tuple(int(d) for d in shape)
        if value.dtype is None:
            value.dtype = np.dtype(np.float32)
        if isinstance(shape, KeyedShape):
            value.data = shape.data.astype(value.dtype, copy=False)


@dataclass(frozen=True)
class SessionOptions:
    """Every InferenceSession option besides the model and the device (the
    session's docstring says what each does); unknown keywords are refused."""
    precision: str = "fp32"
    devices: object = None
    strategy: str = "auto"
    queues: int = 1
    profile: bool = False
    out_of_order: bool = False
    calibration: object = None
    weight_int8: bool = False
    policy: Optional[dict] = None
    providers: object = None       # accepted for onnxruntime compatibility; unused

    def __post_init__(self):
        if self.precision not in PRECISIONS:
            raise ClnetError(f"precision {self.precision!r} is not one of "
                             f"{', '.join(PRECISIONS)}")
        if self.strategy not in STRATEGIES:
            raise ClnetError(f"strategy {self.strategy!r} is not one of "
                             f"{', '.join(STRATEGIES)}")

    @classmethod
    def merged(cls, options: Optional["SessionOptions"], keywords: dict) -> "SessionOptions":
        """`options` (or the defaults) with `keywords` overriding its fields."""
        if options is not None and not isinstance(options, cls):
            raise ClnetError(f"options must be a clnet SessionOptions, not "
                             f"{type(options).__name__} (onnxruntime's SessionOptions do not "
                             f"apply: pass clnet's keywords instead)")
        names = [f.name for f in fields(cls)]
        for key in keywords:
            if key not in names:
                valid = ["device", "options"] + names
                close = difflib.get_close_matches(key, valid, n=1)
                hint = f" (did you mean {close[0]!r}?)" if close else ""
                raise ClnetError(f"InferenceSession got an unknown keyword {key!r}{hint}; "
                                 f"valid keywords: {', '.join(valid)}")
        return replace(options or cls(), **keywords)


class SessionPlans:
    """Plans of a session's graph, with its storage options and weights.

    One cached plan per input signature on the first device (``plan_for``)
    and uncached ones for other devices and subgraphs; weights are uploaded
    once per device and shared by its plans.  Runners get this object
    (clnet.runners.PlanSource), never the session.
    """

    def __init__(self, graph, device: Device, store_half: bool, options: dict):
        self.graph = graph
        self.device = device
        self.store_half = store_half
        self.options = options               # build_plan keywords
        self.by_signature: dict = {}
        self._weights: dict = {}             # id(Device) -> that device's weights

    def weights(self, dev: Device) -> dict:
        """The weights uploaded to `dev` so far (key -> Weight)."""
        return self._weights.setdefault(id(dev), {})

    def plan_for(self, signature: tuple) -> Plan:
        plan = self.by_signature.get(signature)
        if plan is None:
            plan = self.build(signature, self.device)
            self.by_signature[signature] = plan
        return plan

    def build(self, signature: tuple, dev: Device) -> Plan:
        """A plan of the whole graph for these input shapes on one device."""
        graph = self.graph.copy()
        bind_signature(graph, signature)
        return self.build_graph(graph, dev)

    def build_graph(self, graph, dev: Device) -> Plan:
        """build_plan of a shaped (sub)graph on one device, with its weights."""
        try:
            return build_plan(graph, dev, self.store_half, self.weights(dev), **self.options)
        except MemoryError as exc:
            raise DeviceMemoryError(f"out of host memory while planning: {exc}") from None


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
    devices: several devices (selection strings or Devices, or "all"); then
    strategy says how to use them: "single" (the first only), "pipeline"
    (stages placed by a cost model, tensors handed on through the host),
    "data" (the batch split in proportion to measured speed) or "auto".
    queues: in-order queues on one device for independent branches.
    out_of_order: one out-of-order queue instead, where the device allows it.
    profile: keep OpenCL profiling events of each run (see ``last_records``
    and ``end_profiling``).
    policy: kernel variants forced on any device (clnet.policy.VARIANTS),
    for tests and A/B measurements.
    providers: accepted for onnxruntime compatibility, unused.
    options (keyword only): a SessionOptions holding the above; keyword
    arguments override its fields, and an unknown keyword raises ClnetError.
    """

    def __init__(self, model, device=None, precision: Optional[str] = None, *,
                 options: Optional[SessionOptions] = None, **keywords):
        start = time.perf_counter()
        if precision is not None:      # the third positional argument, as before options
            keywords["precision"] = precision
        self.options = options = SessionOptions.merged(options, keywords)
        self.precision = options.precision
        self.devices: list = resolve_devices(options.devices, device)
        self.device: Device = self.devices[0]
        self.strategy = options.strategy
        self.queues = max(1, int(options.queues))
        self.profile = bool(options.profile)
        self.out_of_order = bool(options.out_of_order)
        self._runner_options = RunnerOptions(tuple(self.devices), self.strategy, self.queues,
                                             self.profile, self.out_of_order)
        self.graph = optimize(load_model(model))
        self._runners: dict = {}
        # one plan's arena, input buffers and queue serve every call: calls
        # from several threads take turns (each still gets its own outputs)
        self._lock = threading.RLock()
        self.last_plan: Optional[Plan] = None
        self.last_runner = None
        self._keyed = value_keyed_inputs(self.graph)
        policy = dict(options.policy or {})
        KernelPolicy(self.device, policy)    # unknown switches fail here, at once
        plan_options = self._setup_precision(options.calibration, options.weight_int8, policy)
        if policy:
            plan_options["policy"] = policy
        self.plans = SessionPlans(self.graph, self.device, self._store_half, plan_options)
        static = all(v.is_static for v in self.graph.inputs) and not self._keyed
        if static:
            self.last_plan = self.plans.plan_for(tuple(tuple(v.shape) for v in self.graph.inputs))
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
        weights = sum(w.nbytes for w in self.plans.weights(self.device).values())
        arena = max((p.arena_bytes for p in self.plans.by_signature.values()), default=0)
        return weights + arena

    def _setup_precision(self, calibration, weight_int8: bool, policy: dict) -> dict:
        """The storage options of every plan; for "auto", calibrate and assign
        (the calibration plans use the session's kernel policy too)."""
        self.precision_report: list = []
        self._store_half = self.precision in ("fp16", "fp16-compute")
        plan_options: dict = {"weight_int8": bool(weight_int8)}
        if self.precision == "fp16-compute":
            if not self.device.fp16:
                raise ClnetError(f"precision 'fp16-compute' needs native half arithmetic "
                                 f"(cl_khr_fp16), which {self.device.describe()} lacks; use "
                                 f"'fp16' (half storage, fp32 math) or 'auto'")
            plan_options["extra_defines"] = {"COMPUTE_HALF": True}
        if self.precision != "auto":
            return plan_options
        from .passes.precision import assign_precision, calibrate, random_feeds
        if callable(calibration):
            calibration = calibration(self)
        feeds = list(calibration) if calibration is not None else [random_feeds(self.graph)]
        device = self.device
        stats = calibrate(self.graph, feeds,
                          lambda g: build_plan(g, device, False, {}, policy=policy),
                          self._bind_feeds)
        self.graph, storage, self.precision_report = assign_precision(self.graph, stats)
        plan_options["storage"] = storage
        return plan_options

    def _bind_feeds(self, graph, feeds: dict) -> None:
        """Bind a graph copy to one feed dict as a plan for it would be."""
        bind_signature(graph, self._check_feeds(feeds)[1])

    # -- several queues and devices ------------------------------------------
    def _runner_for(self, signature: tuple):
        runner = self._runners.get(signature)
        if runner is None:
            runner = make_runner(self.plans, signature, self._runner_options)
            self._runners[signature] = runner
        self.last_plan = runner.plans[0]
        self.last_runner = runner
        return runner

    def _select(self, outputs: list, output_names) -> list:
        if not output_names:
            return outputs
        index = {v.name: i for i, v in enumerate(self.graph.outputs)}
        missing = [n for n in output_names if n not in index]
        if missing:
            raise InputError(f"unknown output name(s) {missing}; the model's outputs are "
                             f"{list(index)}")
        return [outputs[index[n]] for n in output_names]

    def _plain(self) -> bool:
        return self.strategy in ("single", "auto") and len(self.devices) == 1 \
            and self.queues == 1 and not self.profile and not self.out_of_order

    def run_async(self, output_names: Optional[Sequence[str]], input_feed: dict):
        """Start one inference; returns a handle whose ``result()`` waits.

        Inputs are double-buffered: the upload of the next call's input
        overlaps the compute of this one (single-device plans).  Other
        strategies run synchronously and return a finished handle.
        """
        feeds, signature = self._check_feeds(input_feed)
        with self._lock:
            runner = self._runner_for(signature)
            if runner.strategy == "single":
                select = None
                if output_names:
                    names = [v.name for v in self.graph.outputs]
                    self._select(list(range(len(names))), output_names)
                    select = [names.index(n) for n in output_names]
                return runner.submit(feeds, select)
            return Finished(self._select(self._run_runner(runner, feeds), output_names))

    def stream(self, feeds, output_names: Optional[Sequence[str]] = None):
        """Yield the outputs for each feed dict of an iterable, in order,
        keeping up to two inferences (or every pipeline stage) busy."""
        iterator = iter(feeds)
        try:
            first = next(iterator)
        except StopIteration:
            return
        arrays, signature = self._check_feeds(first)
        runner = self._runner_for(signature)
        if runner.strategy == "pipeline":
            def checked():
                yield arrays
                for feed in iterator:
                    got, sig = self._check_feeds(feed)
                    if sig != signature:
                        raise InputError(f"stream: every feed must have the shapes of the "
                                         f"first ({signature}), got {sig}")
                    yield got
            names = [v.name for v in self.graph.inputs]
            for outputs in runner.stream(checked(), names):
                yield self._select(outputs, output_names)
            return
        pending = [self.run_async(output_names, first)]
        for feed in iterator:
            pending.append(self.run_async(output_names, feed))
            yield pending.pop(0).result()
        while pending:
            yield pending.pop(0).result()

    def _run_runner(self, runner, feeds: list) -> list:
        if runner.strategy == "pipeline":
            return runner.run(feeds, [v.name for v in self.graph.inputs])
        return runner.run(feeds)

    @property
    def last_records(self) -> list:
        """Profiled commands of the last run (``profile=True``)."""
        return list(self.last_runner.records) if self.last_runner is not None else []

    def end_profiling(self, path: str = "clnet_trace.json") -> str:
        """Write the last run's Chrome trace (Perfetto) and return its path."""
        from .trace import write_chrome_trace
        write_chrome_trace(self.last_records, path)
        return path

    # -- running -----------------------------------------------------------
    def run(self, output_names: Optional[Sequence[str]], input_feed: dict) -> list:
        """Outputs for one feed dict.  Safe from several threads: the calls
        share the session's plans and device buffers, so they take turns."""
        feeds, signature = self._check_feeds(input_feed)
        try:
            with self._lock:
                if not self._plain():
                    return self._select(self._run_runner(self._runner_for(signature), feeds),
                                        output_names)
                plan = self.last_plan = self.plans.plan_for(signature)
                outputs = plan.run(feeds)
        except cl.Error as exc:
            raise opencl_error(exc, self.device) from None
        except MemoryError:
            raise DeviceMemoryError(f"out of host memory running on {self.device.describe()} "
                                    f"(inputs {[tuple(f.shape) for f in feeds]}); try a "
                                    f"smaller batch") from None
        return self._select(outputs, output_names)

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
            signature.append(KeyedShape(arr.shape, arr) if value.name in self._keyed
                             else tuple(arr.shape))
        return arrays, tuple(signature)


def opencl_error(exc: Exception, device) -> ClnetError:
    """A driver failure while running, as a clnet error the user can act on."""
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    if any(code in text for code in ("OUT_OF_RESOURCES", "MEM_OBJECT_ALLOCATION_FAILURE",
                                     "OUT_OF_HOST_MEMORY")):
        return DeviceMemoryError(f"{device.describe()} ran out of memory or resources while "
                                 f"running ({text}); try a smaller batch or --precision fp16")
    return ClnetError(f"the OpenCL driver of {device.describe()} failed while running: {text}")


def _fmt(shape) -> str:
    if shape is None:
        return "(any)"
    return "[" + ", ".join(str(d) if d is not None else "?" for d in shape) + "]"
