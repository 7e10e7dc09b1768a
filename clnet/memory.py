"""The memory planner: every intermediate tensor in one reused arena.

A plan's tensors and scratch buffers become ``Region``s, live from the first
launch that touches them to the last (``live_regions``).  ``assign_offsets``
packs them into one arena so that regions live at the same time never
overlap, aiming for the liveness lower bound; ``allocate`` makes the arena
and its sub-buffers, and ``launch_accesses`` gives each launch the byte
ranges it reads and writes (clnet.schedule orders launches by them).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import numpy as np
import pyopencl as cl

from .errors import DeviceMemoryError
from .graph import Graph, Value


@dataclass(eq=False)
class Scratch:
    """Temporary device memory used by the launches of one node."""
    nbytes: int


@dataclass
class Region:
    """One arena allocation: a tensor (root of its aliases) or a scratch."""
    nbytes: int
    start: int
    end: int
    offset: int = -1
    buffer: Optional["cl.Buffer"] = None


def live_regions(graph: Graph, ctx) -> dict:
    """Tensor root or Scratch -> its Region: liveness over launch indices.

    ctx is the LowerCtx after lowering (its launches, aliases and storage).
    """
    regions: dict = {}
    n = len(ctx.launches)

    def region_of(obj, index: int, nbytes_of) -> None:
        reg = regions.get(obj)
        if reg is None:
            regions[obj] = Region(nbytes_of(), index, index)
        else:
            reg.start = min(reg.start, index)
            reg.end = max(reg.end, index)

    def tensor_bytes(value: Value) -> int:
        return max(value.size * ctx.itemsize(value), 1)

    for value in graph.inputs:
        if not value.is_const:
            root = ctx.root(value)
            region_of(root, -1, lambda r=root: tensor_bytes(r))
    for index, launch in enumerate(ctx.launches):
        for arg in launch.args:
            if isinstance(arg, Value):
                root = ctx.root(arg)
                region_of(root, index, lambda r=root: tensor_bytes(r))
            elif isinstance(arg, Scratch):
                region_of(arg, index, lambda a=arg: max(a.nbytes, 1))
    for value in graph.outputs:
        if not value.is_const:
            root = ctx.root(value)
            region_of(root, n, lambda r=root: tensor_bytes(r))
    # aliases keep their root alive as long as any of them is used
    return regions


# placement orders tried; the arena is the best of them (longest lifetime
# first packs residual networks to the bound, biggest first suits the rest)
PLACEMENT_ORDERS = (
    lambda r: -r.nbytes,
    lambda r: (-(r.end - r.start), -r.nbytes),
    lambda r: (r.start, -r.nbytes),
)


def place_sequence(sequence: list, align: int) -> int:
    """Greedy: in this order, each region at the lowest offset free over its
    lifetime; returns the arena size."""
    placed: list = []
    for reg in sequence:
        size = -(-reg.nbytes // align) * align
        conflicts = sorted((p for p in placed if p.start <= reg.end and reg.start <= p.end),
                           key=lambda p: p.offset)
        offset = 0
        for other in conflicts:
            other_size = -(-other.nbytes // align) * align
            if offset + size <= other.offset:
                break
            offset = max(offset, other.offset + other_size)
        reg.offset = offset
        placed.append(reg)
    return max((r.offset + -(-r.nbytes // align) * align for r in placed), default=0)


IMPROVE_STEPS = 200
IMPROVE_WORK = 4e6


def assign_offsets(regions: list, align: int) -> tuple:
    """(arena bytes, liveness lower bound): the best of several greedy orders,
    then improved by moving a region that ends above the bound to a random
    earlier place in the placement order (kept when the arena does not
    grow; fixed seed, so plans are reproducible; every other move takes any
    region, not only one above the bound).  Lowest-offset-first placement
    alone cannot make equal-sized regions (a residual network's Winograd
    scratch) alternate between two slots; a few random moves can (see
    docs/BENCHMARKS.md, 'arena placement')."""
    events = sorted({r.start for r in regions} | {r.end for r in regions})
    lower = max((sum(r.nbytes for r in regions if r.start <= t <= r.end) for t in events),
                default=0)
    best_total, best_sequence = None, None
    for order in PLACEMENT_ORDERS:
        sequence = sorted(regions, key=order)
        total = place_sequence(sequence, align)
        if best_total is None or total < best_total:
            best_total, best_sequence = total, sequence
    if best_total is None:
        return 0, lower
    rng = np.random.default_rng(0)
    place_sequence(best_sequence, align)
    # a placement costs ~n^2: large graphs get fewer moves (a 1500-region
    # graph none), so that planning stays in the tens of milliseconds
    for _ in range(min(IMPROVE_STEPS, int(IMPROVE_WORK / max(len(regions), 1) ** 2))):
        if best_total <= lower:
            break
        # one of the regions the latest trial (accepted or not) put above the
        # bound, moved to a random earlier place in the order
        above = [k for k, r in enumerate(best_sequence)
                 if r.offset + -(-r.nbytes // align) * align > lower]
        if not above:       # over the bound only by alignment padding
            break
        # (every other move any region: the one to move may sit below the
        # bound, as a large early tensor placed over a long-lived small one)
        pool = above if rng.random() < 0.5 else range(len(best_sequence))
        i = pool[int(rng.integers(0, len(pool)))]
        sequence = list(best_sequence)
        sequence.insert(int(rng.integers(0, i + 1)), sequence.pop(i))
        total = place_sequence(sequence, align)
        if total <= best_total:
            best_total, best_sequence = total, sequence
    place_sequence(best_sequence, align)
    return best_total, lower


def host_available_bytes() -> Optional[int]:
    """Host memory a new allocation can take now (Linux MemAvailable), or
    None where the system does not say."""
    try:
        with open("/proc/meminfo") as handle:
            for line in handle:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


# Of the host's available memory, the part a plan may take: the process
# needs the rest for outputs, feeds and Python itself.
HOST_MEMORY_SHARE = 0.9


def check_fits(dev, total: int, weight_bytes: int, largest: int) -> None:
    """Raise DeviceMemoryError before allocating what cannot fit: the
    device's global memory, its max allocation per buffer and, where device
    memory is host RAM (CPU devices), the host's available memory (PoCL
    aborts the whole process when a buffer cannot be backed)."""
    mib = 2 ** 20
    need = f"{total / mib:.1f} MiB of activations and {weight_bytes / mib:.1f} MiB of weights"
    advice = "use a smaller batch or input shape, --precision fp16, or another device"
    if total + weight_bytes > dev.global_mem:
        raise DeviceMemoryError(f"the model needs {need} on {dev.describe()}, which has "
                                f"{dev.global_mem / mib:.0f} MiB; {advice}")
    if largest > dev.max_alloc:
        raise DeviceMemoryError(f"the model needs a {largest / mib:.1f} MiB tensor on "
                                f"{dev.describe()}, whose largest allocation is "
                                f"{dev.max_alloc / mib:.0f} MiB; {advice}")
    if dev.type == "CPU":
        available = host_available_bytes()
        if available is not None and total > HOST_MEMORY_SHARE * available:
            raise DeviceMemoryError(
                f"the model needs {need} on {dev.describe()}, whose memory is host RAM, "
                f"and the host has {available / mib:.0f} MiB available; {advice}, "
                f"or free memory")


def allocate(dev, regions: list, total: int, weight_bytes: int) -> bool:
    """Give every region its buffer: a sub-buffer of one arena of `total`
    bytes, or its own buffer where the arena exceeds one allocation.
    Returns whether the arena was used."""
    align = dev.base_align
    mf = cl.mem_flags
    check_fits(dev, total, weight_bytes, max((reg.nbytes for reg in regions), default=0))
    try:
        arena = cl.Buffer(dev.context, mf.READ_WRITE, size=max(total, align)) \
            if total <= dev.max_alloc else None
        for reg in regions:
            size = -(-reg.nbytes // align) * align
            if arena is not None:
                reg.buffer = arena.get_sub_region(reg.offset, size)
            else:  # larger than one allocation may be: one buffer per region
                reg.buffer = cl.Buffer(dev.context, mf.READ_WRITE, size=size)
    except cl.Error as exc:
        raise DeviceMemoryError(f"cannot allocate {total} bytes of activations on "
                                f"{dev.describe()}: {exc}") from None
    return arena is not None


def launch_accesses(ctx, regions_by_obj: dict, in_arena: bool) -> list:
    """Per launch, the (start, end, is_write) byte ranges of its buffer args."""
    # regions outside one arena are separate buffers: give each its own range
    spread = {id(reg): i << 40 for i, reg in enumerate(regions_by_obj.values())}
    accesses = []
    for launch in ctx.launches:
        written = {id(v) for v in launch.writes}
        ranges = []
        for arg in launch.args:
            if isinstance(arg, Value):
                root = ctx.root(arg)
                is_write = id(root) in written
            elif isinstance(arg, Scratch):
                root, is_write = arg, True
            else:
                continue
            reg = regions_by_obj[root]
            base = reg.offset if in_arena else spread[id(reg)]
            ranges.append((base, base + max(reg.nbytes, 1), is_write))
        accesses.append(ranges)
    return accesses
