"""Scheduling: launch dependencies, queues on one device, work across devices.

* ``launch_dependencies``: which earlier launches each launch must wait for,
  found from the arena byte ranges it reads and writes (read-after-write,
  write-after-read and write-after-write, so reuse of arena memory by
  unrelated tensors is ordered too).
* ``assign_queues``: independent branches onto several in-order queues of
  one device; only the cross-queue edges become event waits.
* ``node_flops`` / ``DeviceModel``: a cost model from measured device speed
  (``clnet.device.probe_speed``, cached on disk) and measured transfer speed.
* ``place_stages``: cut a graph into contiguous stages and place them on
  devices so that a stream of inputs finishes earliest (HEFT-style: each
  stage's finish time counts its compute on the chosen device plus the copy
  of its inputs from the previous stage's device).
* ``split_batch``: a batch divided in proportion to device speed.
"""
from __future__ import annotations

import itertools
import time
from dataclasses import dataclass, field
from typing import Optional

import numpy as np

STRATEGIES = ("auto", "single", "pipeline", "data")
LAUNCH_OVERHEAD_S = 20e-6      # per kernel launch, when no measurement exists


# -- dependencies -------------------------------------------------------------

def launch_dependencies(accesses: list) -> list:
    """Per launch, the sorted indices of earlier launches it must follow.

    accesses: per launch a list of (start, end, is_write) byte ranges in one
    address space (arena offsets; regions outside the arena get distinct
    ranges).  Only direct hazards are listed.
    """
    writes: list = []           # (start, end, launch)
    reads: list = []            # (start, end, launch) since the last overlapping write
    deps_all = []
    for index, ranges in enumerate(accesses):
        deps = set()
        for start, end, is_write in ranges:
            for w_start, w_end, w_index in writes:
                if w_start < end and start < w_end:
                    deps.add(w_index)
            if is_write:
                for r_start, r_end, r_index in reads:
                    if r_start < end and start < r_end:
                        deps.add(r_index)
        for start, end, is_write in ranges:
            if is_write:
                writes = [w for w in writes if not (w[0] >= start and w[1] <= end)]
                reads = [r for r in reads if not (r[0] >= start and r[1] <= end)]
                writes.append((start, end, index))
            else:
                reads.append((start, end, index))
        deps.discard(index)
        deps_all.append(tuple(sorted(deps)))
    return deps_all


def assign_queues(deps: list, costs: list, n_queues: int) -> tuple:
    """(queue index per launch, cross-queue waits per launch).

    A launch continues the queue of a dependency that is that queue's latest
    launch (a chain stays on one queue); otherwise it starts on the queue
    that is least loaded.  Waits keep only the latest dependency per other
    queue, since in-order queues imply the earlier ones.
    """
    n_queues = max(1, int(n_queues))
    queue_of: list = []
    tail = [-1] * n_queues
    load = [0.0] * n_queues
    for index, launch_deps in enumerate(deps):
        chosen = None
        for dep in sorted(launch_deps, key=lambda d: -costs[d] if d < len(costs) else 0):
            q = queue_of[dep]
            if tail[q] == dep:
                chosen = q
                break
        if chosen is None:
            chosen = min(range(n_queues), key=lambda q: (load[q], q))
        queue_of.append(chosen)
        tail[chosen] = index
        load[chosen] += costs[index] if index < len(costs) else 1.0
    waits = []
    for index, launch_deps in enumerate(deps):
        latest: dict = {}
        for dep in launch_deps:
            q = queue_of[dep]
            if q != queue_of[index]:
                latest[q] = max(latest.get(q, -1), dep)
        waits.append(tuple(sorted(latest.values())))
    return queue_of, waits


def launch_cost(launch) -> float:
    """A rough relative cost of one launch: its work-items."""
    return float(np.prod(launch.gsize)) if launch.gsize else 1.0


# -- cost model ---------------------------------------------------------------

def node_flops(node) -> float:
    """Floating-point operations of one node on shaped values (estimate)."""
    outs = [v for v in node.outputs if v is not None and v.shape is not None]
    out_size = float(sum(v.size for v in outs))
    x = node.input(0)
    w = node.input(1)
    if node.op == "Conv" and w is not None and w.shape is not None:
        per_output = float(np.prod(w.shape[1:]))
        return 2.0 * out_size * per_output
    if node.op in ("MatMul", "Gemm") and x is not None and x.shape:
        k = x.shape[0] if node.op == "Gemm" and node.attrs.get("transA", 0) else x.shape[-1]
        return 2.0 * out_size * float(k)
    ins = sum(v.size for v in node.inputs if v is not None and v.shape is not None
              and not v.is_const)
    return float(max(out_size, ins))


@dataclass
class DeviceModel:
    """Measured speed of one device: compute and host<->device copies."""
    name: str
    gflops: float
    copy_gbps: float
    launch_s: float = LAUNCH_OVERHEAD_S

    def compute_s(self, flops: float, launches: int) -> float:
        return flops / (self.gflops * 1e9) + launches * self.launch_s

    def copy_s(self, nbytes: float) -> float:
        return nbytes / (self.copy_gbps * 1e9) + 2 * self.launch_s


def probe_copy_speed(dev) -> float:
    """GB/s of a 4 MiB host->device->host round trip; cached on disk."""
    from .device import cached_measurement

    return cached_measurement("copy_speed.json", dev, lambda: _measure_copy(dev))


def _measure_copy(dev) -> float:
    import pyopencl as cl

    host = np.ones(1 << 20, dtype=np.float32)
    back = np.empty_like(host)
    buf = cl.Buffer(dev.context, cl.mem_flags.READ_WRITE, size=host.nbytes)
    queue = dev.queue
    best = float("inf")
    for _ in range(3):
        start = time.perf_counter()
        cl.enqueue_copy(queue, buf, host)
        cl.enqueue_copy(queue, back, buf)
        queue.finish()
        best = min(best, time.perf_counter() - start)
    return 2 * host.nbytes / best / 1e9


def device_model(dev) -> DeviceModel:
    from .device import probe_speed

    return DeviceModel(dev.describe(), max(probe_speed(dev), 1e-3),
                       max(probe_copy_speed(dev), 1e-3))


# -- data parallel --------------------------------------------------------------

def split_batch(batch: int, speeds: list) -> list:
    """Rows per device, proportional to speed, every device at least one row
    while rows last; the remainder goes to the fastest devices."""
    speeds = [max(float(s), 1e-9) for s in speeds]
    total = sum(speeds)
    shares = [batch * s / total for s in speeds]
    rows = [int(np.floor(x)) for x in shares]
    order = sorted(range(len(speeds)), key=lambda i: (-(shares[i] - rows[i]), -speeds[i]))
    for i in order[:batch - sum(rows)]:
        rows[i] += 1
    if batch >= len(speeds):
        for i, r in enumerate(rows):
            if r == 0:
                donor = max(range(len(rows)), key=lambda j: rows[j])
                rows[donor] -= 1
                rows[i] += 1
    return rows


# -- pipeline placement ---------------------------------------------------------

@dataclass
class Stage:
    """A contiguous run of nodes placed on one device."""
    index: int
    first: int                  # node range [first, last)
    last: int
    device: int                 # index into the session's devices
    inputs: list = field(default_factory=list)     # values copied in
    outputs: list = field(default_factory=list)    # values handed on
    predicted_s: float = 0.0
    measured_s: Optional[float] = None


def crossing_values(graph, first: int, last: int) -> tuple:
    """(values a node range reads from outside, values it hands on)."""
    inside = graph.nodes[first:last]
    produced = {v for n in inside for v in n.outputs if v is not None}
    later = {v for n in graph.nodes[last:] for v in n.inputs if v is not None}
    later |= set(graph.outputs)
    needed: list = []
    for node in inside:
        for value in node.inputs:
            if value is not None and not value.is_const and value not in produced \
                    and value not in needed:
                needed.append(value)
    handed = [v for n in inside for v in n.outputs
              if v is not None and v in later and not v.is_const]
    return needed, handed


def _value_bytes(values) -> float:
    return float(sum(v.size * 4 for v in values))


def place_stages(graph, models: list, stream: int = 8,
                 node_seconds: Optional[list] = None, reference: int = 0) -> list:
    """Cut the shaped graph into up to len(models) stages and place them.

    Candidate cuts are node boundaries in topological order; every ordered
    choice of distinct devices is tried for 1..len(models) stages.  The score
    is the finish time of a stream of ``stream`` inputs: the sum of the stage
    times (compute on the stage's device plus the copy of its inputs through
    the host) plus (stream - 1) times the slowest stage.  Returns the Stages
    of the best placement.

    Compute time is node FLOPs over the device's measured GFLOP/s, or, when
    node_seconds (per node, measured on device ``reference``) is given, that
    time scaled by the devices' measured speed ratio: small layers run far
    below peak, which FLOPs alone cannot tell.
    """
    nodes = graph.nodes
    n = len(nodes)
    flops = [node_flops(node) for node in nodes]
    prefix = np.concatenate([[0.0], np.cumsum(flops)])
    measured = None
    if node_seconds is not None:
        measured = np.concatenate([[0.0], np.cumsum(node_seconds)])
    boundary_bytes = [0.0] * (n + 1)
    for cut in range(1, n):
        boundary_bytes[cut] = _value_bytes(crossing_values(graph, cut, n)[0])

    def stage_time(first: int, last: int, dev: int) -> float:
        model = models[dev]
        if measured is not None:
            compute = (measured[last] - measured[first]) * models[reference].gflops \
                / model.gflops
        else:
            compute = model.compute_s(prefix[last] - prefix[first], last - first)
        copy = model.copy_s(boundary_bytes[first]) if first > 0 else 0.0
        return compute + copy

    best = None
    cut_points = _candidate_cuts(node_seconds if node_seconds is not None else flops,
                                 len(models))
    for k in range(1, len(models) + 1):
        for devices in itertools.permutations(range(len(models)), k):
            for cuts in itertools.combinations(cut_points, k - 1):
                bounds = [0, *cuts, n]
                times = [stage_time(bounds[i], bounds[i + 1], devices[i]) for i in range(k)]
                score = sum(times) + (stream - 1) * max(times)
                if best is None or score < best[0]:
                    best = (score, bounds, devices, times)
    _, bounds, devices, times = best
    stages = []
    for i, dev in enumerate(devices):
        ins, outs = crossing_values(graph, bounds[i], bounds[i + 1])
        stages.append(Stage(i, bounds[i], bounds[i + 1], dev, ins, outs, times[i]))
    return stages


def _candidate_cuts(flops: list, n_devices: int, limit: int = 48) -> list:
    """Node boundaries to try: all for small graphs, else evenly by work."""
    n = len(flops)
    if n <= limit or n_devices <= 1:
        return list(range(1, n))
    total = float(sum(flops)) or 1.0
    cum = np.cumsum(flops) / total
    picks = {int(np.searchsorted(cum, q)) + 1 for q in np.linspace(0, 1, limit + 2)[1:-1]}
    return sorted(c for c in picks if 0 < c < n)


# -- device lists -----------------------------------------------------------------

def resolve_devices(devices, device=None) -> list:
    """Devices from a list of selections (or "all", or "a,b"), else [device]."""
    from .device import Device, list_devices, select_device
    from .errors import DeviceError

    if devices is None or devices == [] or devices == "":
        return [device if isinstance(device, Device) else select_device(device)]
    if isinstance(devices, str):
        if devices.strip().lower() == "all":
            found = [d for d in list_devices() if d.compiler_available]
            if not found:
                raise DeviceError("--devices all: no OpenCL device with a compiler found")
            return found
        devices = [part for part in devices.split(",") if part.strip()]
    chosen = []
    for item in devices:
        dev = item if isinstance(item, Device) else select_device(str(item).strip())
        if any(dev is other for other in chosen):
            raise DeviceError(f"device {dev.index} ({dev.name}) is listed twice; every "
                              f"device of a multi-device session must be distinct")
        chosen.append(dev)
    return chosen
