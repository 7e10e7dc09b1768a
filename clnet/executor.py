"""Executors of a Plan: several queues, event profiling, overlapped uploads.

``Plan.run`` is the plain path (one in-order queue, no events).  An
``Executor`` runs the same prebound kernels on one or more in-order queues of
the plan's device, joined by event wait-lists decided at construction
(``clnet.schedule.assign_queues``), and can keep every event for profiling.
``AsyncRunner`` double-buffers the inputs so that the upload of the next
input overlaps the compute of the current one.  ``measure_node_seconds``
profiles a plan once per node (the pipeline placer's measured costs).

Each loop here is flat: per step a tuple unpack, a wait-list built from
precomputed indices and one enqueue.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import numpy as np
import pyopencl as cl

from .schedule import assign_queues, launch_cost, node_flops


@dataclass
class Record:
    """One profiled command: what, where, and its OpenCL event."""
    kind: str          # "kernel", "upload", "download", "copy"
    name: str          # the node label or the tensor name
    op: str
    track: str         # "device/queue" track name
    event: "cl.Event"
    flops: float = 0.0

    def times_ns(self) -> tuple:
        prof = self.event.profile
        return int(prof.start), int(prof.end)


def _kernel_op(launch) -> str:
    label = launch.node
    return label[label.rfind("(") + 1:-1] if label.endswith(")") else launch.program


def supports_out_of_order(dev) -> bool:
    """Whether the device's host queues may execute out of order."""
    flag = cl.command_queue_properties.OUT_OF_ORDER_EXEC_MODE_ENABLE
    try:
        return bool(dev.cl_device.queue_properties & flag)
    except cl.Error:
        return False


class Executor:
    """Run a Plan on ``n_queues`` in-order queues, optionally profiled.

    out_of_order: one out-of-order queue instead, where the device supports
    it; then every dependency is an event wait.
    """

    def __init__(self, plan, n_queues: int = 1, profile: bool = False, track: str = "",
                 out_of_order: bool = False):
        self.plan = plan
        dev = plan.dev
        self.profile = profile
        self.track = track or dev.index
        deps = plan.deps or [(i - 1,) if i else () for i in range(len(plan.calls))]
        self.out_of_order = out_of_order and supports_out_of_order(dev)
        if self.out_of_order:
            self._init_out_of_order(dev, deps)
        else:
            self._init_in_order(dev, deps, n_queues)
        flops_of = {}
        if plan.graph is not None:
            flops_of = {n.label(): node_flops(n) for n in plan.graph.nodes}
        last_of = {launch.node: i for i, launch in enumerate(plan.launches)}
        # a node's flops are counted once, on its last launch
        self._labels = [(launch.node or launch.program, _kernel_op(launch),
                         flops_of.get(launch.node, 0.0) if last_of[launch.node] == i else 0.0)
                        for i, launch in enumerate(plan.launches)]
        self.records: list = []

    def _init_out_of_order(self, dev, deps: list) -> None:
        props = cl.command_queue_properties.OUT_OF_ORDER_EXEC_MODE_ENABLE
        if self.profile:
            props |= cl.command_queue_properties.PROFILING_ENABLE
        queue = cl.CommandQueue(dev.context, properties=props)
        self.queues = [queue]
        self.queue_of = [0] * len(self.plan.calls)
        needed = {d for launch_deps in deps for d in launch_deps}
        # sources wait for the uploads, sinks are what the downloads wait for
        self.needs_upload = {i for i, launch_deps in enumerate(deps) if not launch_deps}
        self.tails = tuple(i for i in range(len(deps)) if i not in needed)
        self.steps = [(queue, kernel, gsize, lsize, (deps[i], i in self.needs_upload))
                      for i, (kernel, gsize, lsize) in enumerate(self.plan.calls)]

    def _init_in_order(self, dev, deps: list, n_queues: int) -> None:
        plan = self.plan
        profile = self.profile
        n_queues = max(1, min(int(n_queues), len(plan.calls) or 1))
        self.queues = [dev.new_queue(profiling=profile) for _ in range(n_queues)]
        costs = [launch_cost(launch) for launch in plan.launches]
        self.queue_of, waits = assign_queues(deps, costs, n_queues)
        last_on = {}
        for index, q in enumerate(self.queue_of):
            last_on[q] = index
        first_on = {}
        for index, q in enumerate(self.queue_of):
            first_on.setdefault(q, index)
        # the uploads happen on queue 0: other queues' first launches wait for them
        self.needs_upload = {i for q, i in first_on.items() if q != 0}
        self.tails = tuple(i for q, i in last_on.items() if q != 0)
        # waits is None for the common case (no event to wait for): one plain call
        self.steps = [(self.queues[q], kernel, gsize, lsize,
                       (waits[i], i in self.needs_upload)
                       if waits[i] or i in self.needs_upload else None)
                      for i, (q, (kernel, gsize, lsize)) in
                      enumerate(zip(self.queue_of, plan.calls))]

    @property
    def n_queues(self) -> int:
        return len(self.queues)

    def submit(self, feeds: list) -> tuple:
        """Enqueue one inference; returns (host outputs, their events)."""
        plan = self.plan
        first = self.queues[0]
        records = [] if self.profile else None
        hosts = []
        uploads = []
        for (value, buf, sdtype), feed in zip(plan.input_slots, feeds):
            if buf is None:
                continue
            host = np.ascontiguousarray(feed, dtype=sdtype)
            hosts.append(host)
            event = cl.enqueue_copy(first, buf, host, is_blocking=False)
            uploads.append(event)
            if records is not None:
                records.append(Record("upload", value.name, "upload",
                                      f"{self.track} copies", event))
        events = [None] * len(self.steps)
        enqueue = cl.enqueue_nd_range_kernel
        for index, (queue, kernel, gsize, lsize, waits) in enumerate(self.steps):
            if waits is None:
                events[index] = enqueue(queue, kernel, gsize, lsize)
            else:
                wait_for = [events[j] for j in waits[0]] + (uploads if waits[1] else [])
                events[index] = enqueue(queue, kernel, gsize, lsize, wait_for=wait_for or None)
        if records is not None:
            for index, event in enumerate(events):
                name, op, flops = self._labels[index]
                records.append(Record("kernel", name, op,
                                      f"{self.track} queue {self.queue_of[index]}", event,
                                      flops))
        tail_wait = [events[i] for i in self.tails]
        if self.out_of_order:
            tail_wait += uploads
        results, done = self._download(first, tail_wait, records)
        if records is not None:
            self.records = records
        return results, done, hosts

    def _download(self, queue, tail_wait: list, records) -> tuple:
        results, done = [], []
        for value, buf, sdtype, data in self.plan.output_slots:
            if data is not None:
                results.append(data)
                continue
            host = np.empty(value.shape, dtype=sdtype)
            if host.size:
                event = cl.enqueue_copy(queue, host, buf, is_blocking=False,
                                        wait_for=tail_wait or None)
                done.append(event)
                if records is not None:
                    records.append(Record("download", value.name, "download",
                                          f"{self.track} copies", event))
            results.append(host)
        if not done and tail_wait:
            done.extend(tail_wait)
        return results, done

    def finish(self) -> None:
        for queue in self.queues:
            queue.finish()

    def collect(self, results: list) -> list:
        return [r if data is not None or r.dtype == v.dtype else r.astype(v.dtype)
                for r, (v, _, _, data) in zip(results, self.plan.output_slots)]

    def run(self, feeds: list) -> list:
        results, _, _ = self.submit(feeds)
        self.finish()
        return self.collect(results)


class AsyncRunner:
    """Double-buffered inputs: upload of inference k+1 overlaps compute of k.

    Each input gets two buffers outside the arena (the arena is reused by
    other tensors during compute, so it cannot receive the next input); the
    kernels that read an input are bound twice, once per buffer.  Uploads go
    on their own queue and wait only for the inference two back, which used
    the same buffer.
    """

    def __init__(self, plan):
        self.plan = plan
        dev = plan.dev
        self.compute = dev.new_queue()
        self.copy = dev.new_queue()
        mf = cl.mem_flags
        inputs = [buf for _, buf, _ in plan.input_slots if buf is not None]
        self.buffers = [[cl.Buffer(dev.context, mf.READ_WRITE, size=buf.size) for buf in inputs]
                        for _ in range(2)]
        self.calls = [self._bind(inputs, parity) for parity in range(2)]
        self.done: list = [None, None]
        self.count = 0

    def _bind(self, inputs: list, parity: int) -> list:
        swap = {id(buf): new for buf, new in zip(inputs, self.buffers[parity])}
        calls = []
        for (kernel, gsize, lsize), args in zip(self.plan.calls, self.plan.bound_args):
            if any(id(a) in swap for a in args):
                kernel = cl.Kernel(kernel.program, kernel.function_name)
                kernel.set_args(*[swap.get(id(a), a) for a in args])
            calls.append((kernel, gsize, lsize))
        return calls

    def submit(self, feeds: list, select: Optional[list] = None) -> "PendingRun":
        """Enqueue one inference; select: the indices of the outputs to return."""
        parity = self.count % 2
        self.count += 1
        previous = self.done[parity]
        uploads, hosts = [], []
        slots = [slot for slot in self.plan.input_slots if slot[1] is not None]
        feeds = [f for (_, buf, _), f in zip(self.plan.input_slots, feeds) if buf is not None]
        for (value, _, sdtype), feed, buf in zip(slots, feeds, self.buffers[parity]):
            host = np.ascontiguousarray(feed, dtype=sdtype)
            hosts.append(host)
            uploads.append(cl.enqueue_copy(self.copy, buf, host, is_blocking=False,
                                           wait_for=[previous] if previous else None))
        enqueue = cl.enqueue_nd_range_kernel
        calls = self.calls[parity]
        if calls:
            kernel, gsize, lsize = calls[0]
            enqueue(self.compute, kernel, gsize, lsize, wait_for=uploads or None)
            for kernel, gsize, lsize in calls[1:]:
                enqueue(self.compute, kernel, gsize, lsize)
        else:
            cl.enqueue_barrier(self.compute, wait_for=uploads or None)
        results, events = [], []
        for value, buf, sdtype, data in self.plan.output_slots:
            if data is not None:
                results.append(data)
                continue
            host = np.empty(value.shape, dtype=sdtype)
            if host.size:
                events.append(cl.enqueue_copy(self.compute, host, buf, is_blocking=False))
            results.append(host)
        marker = cl.enqueue_marker(self.compute)
        self.done[parity] = marker
        self.compute.flush()
        self.copy.flush()
        return PendingRun(self.plan, results, marker, hosts, select)


class PendingRun:
    """The outputs of an inference still running; ``result()`` waits."""

    def __init__(self, plan, results: list, marker, hosts: list,
                 select: Optional[list] = None):
        self._plan = plan
        self._results = results
        self._marker = marker
        self._hosts = hosts
        self._select = select
        self._value: Optional[list] = None

    def done(self) -> bool:
        status = self._marker.command_execution_status
        return status == cl.command_execution_status.COMPLETE

    def result(self) -> list:
        if self._value is None:
            self._marker.wait()
            outs = [r if data is not None or r.dtype == v.dtype else r.astype(v.dtype)
                    for r, (v, _, _, data) in zip(self._results, self._plan.output_slots)]
            self._value = outs if self._select is None else [outs[i] for i in self._select]
            self._hosts = []
        return self._value


def measure_node_seconds(plan, graph) -> list:
    """Per node of graph, kernel seconds of one profiled run of plan (the
    second of two, so that lazy per-device kernel compilation is excluded)."""
    executor = Executor(plan, 1, profile=True)
    feeds = [np.zeros(value.shape, dtype=value.dtype) for value, _, _ in plan.input_slots]
    for _ in range(2):
        executor.run(feeds)
    by_label: dict = {}
    for record in executor.records:
        if record.kind == "kernel":
            start, end = record.times_ns()
            by_label[record.name] = by_label.get(record.name, 0.0) + (end - start) * 1e-9
    return [by_label.get(node.label(), 0.0) for node in graph.nodes]
