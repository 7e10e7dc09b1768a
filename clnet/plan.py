"""Lowering and planning: a Graph with concrete input shapes becomes a Plan.

``build_plan`` walks the nodes in order.  Each node is either folded to a
constant (all inputs constant), or handed to its op's lowering function,
which declares output shapes and emits ``Launch``es through ``LowerCtx``.
Then every intermediate tensor gets an arena offset by liveness
(clnet.memory), programs are built (in parallel), kernels are created with
their arguments bound, and the result is a flat list of enqueues: the
executor does no per-inference shape logic, lookups or allocation.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Optional

import numpy as np
import pyopencl as cl

from .compile import build_many
from .errors import ClnetError, DeviceMemoryError, ModelError, UnsupportedOpError
from .graph import Graph, Value
from .memory import Scratch, allocate, assign_offsets, launch_accesses, live_regions
from .ops.registry import lookup
from .passes.fold import NEVER_FOLD, evaluate
from .policy import KernelPolicy
from .schedule import launch_dependencies

def is_float(dtype) -> bool:
    return dtype is not None and np.dtype(dtype).kind == "f"


@dataclass(eq=False)
class Weight:
    """A constant uploaded once per session (possibly repacked)."""
    key: tuple
    buffer: "cl.Buffer"
    nbytes: int


@dataclass(eq=False)
class Launch:
    program: str
    defines: tuple
    entry: str
    gsize: tuple
    lsize: Optional[tuple]
    args: list
    node: str = ""
    writes: tuple = ()       # the Values (roots) this launch produces


class LowerCtx:
    """What an op's lowering function sees and emits."""

    def __init__(self, dev, store_half: bool, opset: int, weights: dict,
                 storage: Optional[dict] = None, weight_int8: bool = False,
                 extra_defines: Optional[dict] = None, policy: Optional[dict] = None):
        self.dev = dev
        self.policy = KernelPolicy(dev, policy)   # every variant choice goes through it
        self._default_half = store_half
        self._storage = storage          # mixed precision: value name -> stored as half
        self._value_half: dict = {}      # Value -> half storage, as lowered
        self._node_half: Optional[bool] = None
        self.weight_int8 = weight_int8   # Conv/Gemm/MatMul weights kept as int8
        self.extra_defines = dict(extra_defines or {})
        self.opset = opset
        self.launches: list = []
        self._weights = weights          # session-wide cache: key -> Weight
        self._alias: dict = {}           # Value -> Value it views
        self._node = None

    # -- queries ---------------------------------------------------------
    @staticmethod
    def shape(value: Value) -> tuple:
        return tuple(value.shape)

    @property
    def node(self):
        """The node being lowered (None between nodes)."""
        return self._node

    def cached_weight(self, key: tuple) -> Optional[Weight]:
        """The weight uploaded under `key` in this storage type, if any."""
        return self._weights.get((key, self.store_half))

    @property
    def store_half(self) -> bool:
        """Half storage for the node being lowered (per node in mixed precision)."""
        return self._default_half if self._node_half is None else self._node_half

    def lower_subgraph(self, graph: Graph) -> None:
        """Fold or lower a graph's nodes into this plan (control flow inlines
        its branches and bodies so, without importing the planner)."""
        lower_graph(graph, self)

    def begin_node(self, node) -> None:
        """Make `node` current; its storage is that of its outputs (else inputs)."""
        self._node = node
        self._node_half = None
        if self._storage is None or node is None:
            return
        for value in list(node.outputs) + list(node.inputs):
            if value is not None and value.name in self._storage:
                self._node_half = self._storage[value.name]
                return

    def value_half(self, value: Value) -> bool:
        """Whether a float tensor is stored as half (its root decides for views)."""
        root = self.root(value)
        if root in self._value_half:
            return self._value_half[root]
        if self._storage is not None and root.name in self._storage:
            return self._storage[root.name]
        return self.store_half

    def value_storage_dtype(self, value: Value) -> np.dtype:
        if is_float(value.dtype):
            return np.dtype(np.float16 if self.value_half(value) else np.float32)
        return self.storage_dtype(value.dtype)

    def storage_dtype(self, dtype) -> np.dtype:
        if is_float(dtype):
            return np.dtype(np.float16 if self.store_half else np.float32)
        if np.dtype(dtype) == np.bool_:
            return np.dtype(np.uint8)
        return np.dtype(dtype)

    def itemsize(self, value: Value) -> int:
        return self.value_storage_dtype(value).itemsize

    def root(self, value: Value) -> Value:
        while value in self._alias:
            value = self._alias[value]
        return value

    # -- declarations ------------------------------------------------------
    def output(self, value: Value, shape, dtype=None) -> Value:
        shape = tuple(int(d) for d in shape)
        if any(d < 0 for d in shape):
            raise ModelError(f"{self._node.label()}: computed a negative dimension {shape} "
                             f"for {value.name!r}")
        value.shape = shape
        if dtype is not None:
            value.dtype = np.dtype(dtype)
        elif value.dtype is None:
            value.dtype = np.dtype(np.float32)
        if is_float(value.dtype) and value not in self._alias:
            self._value_half[value] = self.store_half
        return value

    def set_const(self, value: Value, data) -> None:
        data = np.asarray(data)
        if value.dtype is not None and data.dtype != value.dtype and value.dtype != np.dtype(object):
            data = data.astype(value.dtype)
        value.data = data
        value.shape = tuple(data.shape)
        value.dtype = data.dtype

    def alias(self, out: Value, src: Value, shape) -> None:
        """`out` is `src`'s memory seen with another shape (Reshape & co)."""
        self.output(out, shape, src.dtype)
        if src.is_const:
            self.set_const(out, np.reshape(src.data, out.shape))
        else:
            self._alias[out] = src

    def weight(self, array: np.ndarray, key: tuple) -> Weight:
        """Upload a constant once per session (float arrays in storage type)."""
        if self.weight_int8 and self._node is not None and is_float(array.dtype):
            from .ops.quant import int8_weight
            dequantized = int8_weight(self, array, key)
            if dequantized is not None:
                return dequantized
        full_key = (key, self.store_half)
        found = self._weights.get(full_key)
        if found is not None:
            return found
        array = np.ascontiguousarray(array, dtype=self.storage_dtype(array.dtype))
        nbytes = max(array.nbytes, 4)
        if nbytes > self.dev.max_alloc:
            raise DeviceMemoryError(f"constant {key[0]!r} needs {nbytes} bytes, more than the "
                                    f"device's max allocation {self.dev.max_alloc}")
        mf = cl.mem_flags
        # a CPU device reads host memory anyway: let it use the array in place
        # (no copy of every weight at load: see docs/BENCHMARKS.md,
        # 'zero-copy weights'); other devices get their own copy
        zero_copy = self.dev.host_unified_memory and array.nbytes > 0
        try:
            if zero_copy:   # pyopencl keeps the array alive with the buffer
                buf = cl.Buffer(self.dev.context, mf.READ_ONLY | mf.USE_HOST_PTR, hostbuf=array)
            elif array.nbytes:
                buf = cl.Buffer(self.dev.context, mf.READ_ONLY | mf.COPY_HOST_PTR, hostbuf=array)
            else:
                buf = cl.Buffer(self.dev.context, mf.READ_ONLY, size=4)
        except cl.Error as exc:
            raise DeviceMemoryError(f"cannot allocate {nbytes} bytes for constant {key[0]!r} "
                                    f"on {self.dev.describe()}: {exc}") from None
        weight = Weight(full_key, buf, nbytes)
        self._weights[full_key] = weight
        return weight

    def scratch(self, nbytes: int) -> Scratch:
        return Scratch(int(nbytes))

    def launch(self, program: str, gsize, args: list, defines: Optional[dict] = None,
               entry: Optional[str] = None, lsize=None) -> None:
        gsize = tuple(int(g) for g in gsize)
        if any(g == 0 for g in gsize):
            return
        bound = []
        for arg in args:
            if isinstance(arg, Value) and arg.is_const:
                arg = self.weight(arg.data, (arg.name,))
            bound.append(arg)
        defs = dict(self.extra_defines)
        defs.update(defines or {})
        if self.store_half:
            defs["STORE_HALF"] = True
        writes = tuple(self.root(v) for v in self._node.outputs if v is not None) \
            if self._node else ()
        self.launches.append(Launch(program, tuple(sorted(defs.items())), entry or program,
                                    gsize, tuple(lsize) if lsize else None, bound,
                                    self._node.label() if self._node else "", writes))


@dataclass
class Plan:
    """Everything needed to run one input-shape signature."""
    dev: object
    input_slots: list        # (Value, buffer, storage dtype)
    output_slots: list       # (Value, buffer or None, storage dtype, const data or None)
    calls: list              # (kernel, gsize, lsize)
    launches: list
    arena_bytes: int
    weight_bytes: int
    lower_bound_bytes: int
    build_s: float = 0.0
    keep: list = field(default_factory=list)
    deps: list = field(default_factory=list)       # per launch: earlier launches it needs
    bound_args: list = field(default_factory=list)  # per launch: the kernel's arguments
    graph: Optional[Graph] = None

    def run(self, feeds: list, queue=None) -> list:
        queue = queue or self.dev.queue
        hosts = []
        for (value, buf, sdtype), feed in zip(self.input_slots, feeds):
            if buf is None:
                continue
            host = np.ascontiguousarray(feed, dtype=sdtype)
            hosts.append(host)
            cl.enqueue_copy(queue, buf, host, is_blocking=False)
        enqueue = cl.enqueue_nd_range_kernel
        for kernel, gsize, lsize in self.calls:
            enqueue(queue, kernel, gsize, lsize)
        results = []
        for value, buf, sdtype, data in self.output_slots:
            if data is not None:
                results.append(data)
                continue
            host = np.empty(value.shape, dtype=sdtype)
            if host.size:
                cl.enqueue_copy(queue, host, buf, is_blocking=False)
            results.append(host)
        queue.finish()
        return [r if r.dtype == v.dtype or data is not None else r.astype(v.dtype)
                for r, (v, _, _, data) in zip(results, self.output_slots)]


def lower_graph(graph: Graph, ctx: LowerCtx) -> None:
    """Fold or lower every node in order; fills ctx.launches and shapes."""
    for node in graph.nodes:
        ctx.begin_node(node)
        present = [v for v in node.inputs if v is not None]
        if node.op not in NEVER_FOLD \
                and all(v.is_const for v in present) \
                and node.epilogue is None and node.body is None \
                and not any(k.startswith("_") for k in node.attrs):
            for value, data in zip(node.outputs, evaluate(node, ctx.opset)):
                ctx.set_const(value, data)
            continue
        missing = [v.name for v in present if v.shape is None]
        if missing:
            raise ModelError(f"{node.label()}: inputs {missing} have no value (not produced by "
                             f"any node, not an initializer, not a graph input)")
        entry = lookup(node.op, ctx.opset, node.domain)
        if entry is None:
            raise UnsupportedOpError(f"{node.label()}: ONNX op {node.op!r} (opset {ctx.opset}) "
                                     f"is not supported")
        try:
            entry.fn(ctx, node)
        except ClnetError:
            raise
        except OverflowError as exc:    # a size past a kernel's 32-bit int arguments
            raise UnsupportedOpError(
                f"{node.label()}: input shapes "
                f"{[ctx.shape(v) if v is not None else None for v in node.inputs]} exceed "
                f"the 32-bit sizes clnet's kernels index with ({exc})") from None
        except (ValueError, IndexError, KeyError, TypeError, ZeroDivisionError) as exc:
            raise ModelError(f"{node.label()}: invalid attributes or input shapes "
                             f"{[ctx.shape(v) if v is not None else None for v in node.inputs]}: "
                             f"{exc}") from None
        for value in node.outputs:
            if value.shape is None and value.name:
                raise ModelError(f"{node.label()}: output {value.name!r} was not produced")
    ctx.begin_node(None)


def build_plan(graph: Graph, dev, store_half: bool, weights: dict, **options) -> Plan:
    """Lower a graph whose inputs have concrete shapes into a runnable Plan.

    options go to LowerCtx: storage (mixed precision), weight_int8, extra_defines,
    policy (KernelPolicy override).
    """
    start = time.perf_counter()
    ctx = LowerCtx(dev, store_half, graph.opset, weights, **options)
    lower_graph(graph, ctx)

    # every graph output must be its own region unless it is a constant
    regions_by_obj = live_regions(graph, ctx)
    total, lower = assign_offsets(list(regions_by_obj.values()), dev.base_align)
    in_arena = allocate(dev, list(regions_by_obj.values()), total,
                        sum(w.nbytes for w in weights.values()))

    requests = sorted({(l.program, l.defines) for l in ctx.launches})
    programs = dict(zip(requests, build_many(dev, [(p, dict(d)) for p, d in requests])))
    calls = []
    bound_per_launch = []
    for launch in ctx.launches:
        kernel = cl.Kernel(programs[(launch.program, launch.defines)], launch.entry)
        args = []
        for arg in launch.args:
            if isinstance(arg, Value):
                args.append(regions_by_obj[ctx.root(arg)].buffer)
            elif isinstance(arg, Scratch):
                args.append(regions_by_obj[arg].buffer)
            elif isinstance(arg, Weight):
                args.append(arg.buffer)
            else:
                args.append(arg)
        kernel.set_args(*args)
        bound_per_launch.append(args)
        gsize = launch.gsize
        if launch.lsize:
            gsize = tuple(-(-g // l) * l for g, l in zip(gsize, launch.lsize))
        calls.append((kernel, gsize, launch.lsize))

    input_slots = []
    for value in graph.inputs:
        reg = regions_by_obj.get(ctx.root(value))
        input_slots.append((value, reg.buffer if reg else None, ctx.value_storage_dtype(value)))
    output_slots = []
    for value in graph.outputs:
        if value.is_const:
            output_slots.append((value, None, value.dtype, value.data))
        else:
            reg = regions_by_obj[ctx.root(value)]
            output_slots.append((value, reg.buffer, ctx.value_storage_dtype(value), None))
    weight_bytes = sum(w.nbytes for w in weights.values())
    plan = Plan(dev, input_slots, output_slots, calls, ctx.launches, total, weight_bytes, lower,
                time.perf_counter() - start)
    plan.deps = launch_dependencies(launch_accesses(ctx, regions_by_obj, in_arena))
    plan.bound_args = [list(kernel_args) for kernel_args in bound_per_launch]
    plan.graph = graph
    return plan
