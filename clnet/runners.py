"""Runners: how one input signature of a session runs on its devices.

``make_runner`` picks one by the session's strategy: ``SingleRunner`` (one
device, plain or through an Executor), ``DataRunner`` (the batch split
across devices) or ``PipelineRunner`` (stages on devices).  A runner gets
its plans from a ``PlanSource``, the narrow face the session shows it, and
how to run them from ``RunnerOptions``.
"""
from __future__ import annotations

import queue as pyqueue
import threading
import time
from dataclasses import dataclass
from typing import Optional, Protocol

import numpy as np

from .errors import ClnetError, ModelError
from .executor import AsyncRunner, Executor, PendingRun, measure_node_seconds
from .graph import Graph
from .schedule import device_model, place_stages, split_batch


class PlanSource(Protocol):
    """What a runner asks of its session: plans of the session's graph."""

    def plan_for(self, signature: tuple):
        """The plan for these input shapes on the first device (cached)."""

    def build(self, signature: tuple, dev):
        """A plan of the whole graph for these input shapes on `dev`."""

    def build_graph(self, graph: Graph, dev):
        """A plan of a shaped (sub)graph on `dev`, sharing that device's weights."""


@dataclass(frozen=True)
class RunnerOptions:
    """How a session runs its plans (see InferenceSession)."""
    devices: tuple
    strategy: str = "auto"
    queues: int = 1
    profile: bool = False
    out_of_order: bool = False


class SingleRunner:
    """One device: the plain ``Plan.run`` path, or an Executor when several
    queues or profiling are asked for."""

    strategy = "single"

    def __init__(self, plan, n_queues: int = 1, profile: bool = False,
                 out_of_order: bool = False):
        self.plan = plan
        self.plans = [plan]
        special = n_queues > 1 or profile or out_of_order
        self.executor = Executor(plan, n_queues, profile, out_of_order=out_of_order) \
            if special else None
        self._async: Optional[AsyncRunner] = None

    @property
    def records(self) -> list:
        return self.executor.records if self.executor is not None else []

    def run(self, feeds: list) -> list:
        if self.executor is None:
            return self.plan.run(feeds)
        return self.executor.run(feeds)

    def submit(self, feeds: list, select: Optional[list] = None) -> PendingRun:
        """Start one inference (double-buffered inputs); select picks outputs."""
        if self._async is None:
            self._async = AsyncRunner(self.plan)
        return self._async.submit(feeds, select)


class DataRunner:
    """Data parallel: the batch split by rows, one plan (and weight replica)
    per device, all enqueued before any is waited for."""

    strategy = "data"

    def __init__(self, plans: list, rows: list, profile: bool = False, n_queues: int = 1,
                 out_of_order: bool = False):
        self.plans = plans
        self.rows = rows
        self.executors = [Executor(p, n_queues, profile, out_of_order=out_of_order)
                          for p in plans]
        bounds = np.cumsum([0] + list(rows))
        self.slices = [slice(int(a), int(b)) for a, b in zip(bounds[:-1], bounds[1:])]
        self.records: list = []

    def run(self, feeds: list) -> list:
        pending = []
        for executor, rows in zip(self.executors, self.slices):
            results, _, hosts = executor.submit([np.asarray(f)[rows] for f in feeds])
            for queue in executor.queues:
                queue.flush()
            pending.append((executor, results, hosts))
        parts = []
        for executor, results, _ in pending:
            executor.finish()
            parts.append(executor.collect(results))
        if self.executors[0].profile:
            self.records = [r for e in self.executors for r in e.records]
        return [np.concatenate([part[i] for part in parts], axis=0)
                for i in range(len(parts[0]))]


class PipelineRunner:
    """Pipeline (model) parallel: stages on devices, tensors handed on through
    the host.  ``run`` goes stage after stage; ``stream`` runs one thread per
    stage so that stage s works on input k while stage s+1 works on k-1."""

    strategy = "pipeline"

    def __init__(self, stages: list, plans: list, output_values: list, profile: bool = False,
                 n_queues: int = 1, out_of_order: bool = False):
        self.stages = stages
        self.plans = plans
        self.output_values = output_values
        self.profile = profile
        self.executors = [Executor(p, n_queues, profile, out_of_order=out_of_order)
                          for p in plans]
        self.records: list = []

    def _run_stage(self, index: int, tensors: dict) -> None:
        plan = self.plans[index]
        feeds = [tensors[v.name] for v, _, _ in plan.input_slots]
        start = time.perf_counter()
        outs = self.executors[index].run(feeds)
        elapsed = time.perf_counter() - start
        stage = self.stages[index]
        stage.measured_s = elapsed if stage.measured_s is None else min(stage.measured_s, elapsed)
        if self.profile:
            self.records.extend(self.executors[index].records)
        for (value, _, _, _), out in zip(plan.output_slots, outs):
            tensors[value.name] = out

    def run(self, feeds: list, input_names: Optional[list] = None) -> list:
        tensors = dict(zip(input_names or [], feeds))
        if self.profile:
            self.records = []
        for index in range(len(self.plans)):
            self._run_stage(index, tensors)
        return [tensors[v.name] if v.data is None else v.data for v in self.output_values]

    def stream(self, feeds_iter, input_names: list):
        """Yield the outputs of each feed list, stages overlapping in time."""
        if self.profile:
            self.records = []
        links = [pyqueue.Queue(maxsize=2) for _ in range(len(self.plans) + 1)]
        errors: list = []

        def worker(index: int) -> None:
            # after a failure keep draining, so that no upstream put blocks
            while True:
                item = links[index].get()
                if item is None:
                    links[index + 1].put(None)
                    return
                if errors:
                    continue
                try:
                    self._run_stage(index, item)
                except Exception as exc:  # handed to the consumer below
                    errors.append(exc)
                    continue
                links[index + 1].put(item)

        def feeder() -> None:
            try:
                for feeds in feeds_iter:
                    if errors:
                        break
                    links[0].put(dict(zip(input_names, feeds)))
            except Exception as exc:  # a bad feed: reported like a stage failure
                errors.append(exc)
            finally:
                links[0].put(None)

        threads = [threading.Thread(target=worker, args=(i,), daemon=True)
                   for i in range(len(self.plans))]
        threads.append(threading.Thread(target=feeder, daemon=True))
        for thread in threads:
            thread.start()
        while True:
            item = links[-1].get()
            if item is None:
                break
            yield [item[v.name] if v.data is None else v.data for v in self.output_values]
        for thread in threads:
            thread.join()
        if errors:
            raise errors[0]


class Finished:
    """A handle like PendingRun for work that already completed."""

    def __init__(self, outputs: list):
        self._outputs = outputs

    def done(self) -> bool:
        return True

    def result(self) -> list:
        return self._outputs


def make_runner(plans: PlanSource, signature: tuple, options: RunnerOptions):
    """The runner of one input signature under the session's strategy."""
    if len(options.devices) == 1 or options.strategy == "single":
        return SingleRunner(plans.plan_for(signature), options.queues, options.profile,
                            options.out_of_order)
    if options.strategy in ("data", "auto"):
        runner = _data_runner(plans, signature, options, strict=options.strategy == "data")
        if runner is not None:
            return runner
    return _pipeline_runner(plans, signature, options)


def _data_runner(plans: PlanSource, signature: tuple, options: RunnerOptions, strict: bool):
    batches = {shape[0] if shape else None for shape in signature}
    batch = batches.pop() if len(batches) == 1 else None
    if not batch or (batch < 2 and not strict):
        if strict:
            raise ModelError(f"strategy 'data' splits the first dimension of every input, "
                             f"but the input shapes {list(signature)} do not share one; use "
                             f"strategy 'pipeline' or 'single'")
        return None
    speeds = [device_model(dev).gflops for dev in options.devices]
    rows = split_batch(batch, speeds)
    built, used = [], []
    for dev, count in zip(options.devices, rows):
        if count == 0:
            continue
        sub = tuple((count,) + tuple(shape[1:]) for shape in signature)
        try:
            plan = plans.build(sub, dev)
        except ClnetError as exc:
            if strict:
                raise ModelError(f"strategy 'data': the model does not run with batch {count} "
                                 f"on {dev.index}: {exc}") from None
            return None
        bad = [v.name for v, _, _, data in plan.output_slots
               if data is None and (not v.shape or v.shape[0] != count)]
        if bad:
            if strict:
                raise ModelError(f"strategy 'data': outputs {bad} do not follow the batch "
                                 f"dimension, so the batch cannot be split across devices")
            return None
        built.append(plan)
        used.append(count)
    return DataRunner(built, used, options.profile, options.queues, options.out_of_order)


def _pipeline_runner(plans: PlanSource, signature: tuple, options: RunnerOptions):
    full = plans.plan_for(signature)
    devices = list(options.devices)
    models = [device_model(dev) for dev in devices]
    shaped = full.graph.copy()
    seconds = measure_node_seconds(full, full.graph)
    stages = place_stages(shaped, models, node_seconds=seconds,
                          reference=devices.index(full.dev))
    built = []
    for stage in stages:
        sub = Graph(shaped.nodes[stage.first:stage.last], list(stage.inputs),
                    list(stage.outputs), shaped.opset, f"{shaped.name}/stage{stage.index}")
        built.append(plans.build_graph(sub, devices[stage.device]))
    return PipelineRunner(stages, built, list(shaped.outputs), options.profile,
                          options.queues, options.out_of_order)
