"""Per-launch dispatch overhead: clnet's executors vs a bare pyopencl loop.

The model is a chain of N tiny elementwise ops on a [1, 16] tensor (no
fusion passes run, so each op is one kernel launch).  Every variant enqueues
the same prebound kernels; the bare loop is the floor that pyopencl itself
costs, so the differences are clnet's own per-inference Python work.

    python tools/bench_dispatch.py [--ops 200] [--iters 200] [--device 0:0]

Prints microseconds per op (median of the iterations) for each variant.
"""
from __future__ import annotations

import argparse
import time

import numpy as np
import onnx
import pyopencl as cl
from onnx import TensorProto, helper

OPS = ("Relu", "Neg", "Abs", "Sigmoid")


def chain_model(n_ops: int, width: int = 16) -> onnx.ModelProto:
    nodes, prev = [], "x"
    for i in range(n_ops):
        out = "y" if i == n_ops - 1 else f"t{i}"
        nodes.append(helper.make_node(OPS[i % len(OPS)], [prev], [out], name=f"op{i}"))
        prev = out
    graph = helper.make_graph(
        nodes, "chain", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, width])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, width])])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])


def round_robin_us(variants: list, iters: int) -> list:
    """(name, median microseconds) per variant, the variants interleaved in
    every iteration so that machine load affects them alike.  A variant's
    drain function (if any) runs outside its timing."""
    times = {name: [] for name, _, _ in variants}
    for fn in (v[1] for v in variants):   # warm-up
        fn()
    for drain in (v[2] for v in variants if v[2]):
        drain()
    for _ in range(iters):
        for name, fn, drain in variants:
            start = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - start)
            if drain:
                drain()
    return [(name, float(np.median(times[name]) * 1e6)) for name, _, _ in variants]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ops", type=int, default=200)
    parser.add_argument("--iters", type=int, default=200)
    parser.add_argument("--device", default=None)
    args = parser.parse_args()

    from clnet.device import select_device
    from clnet.executor import AsyncRunner, Executor
    from clnet.frontend import load_model
    from clnet.plan import build_plan
    from clnet.runtime import InferenceSession

    dev = select_device(args.device)
    model = chain_model(args.ops)
    graph = load_model(model)
    plan = build_plan(graph, dev, False, {})
    n = len(plan.calls)
    x = np.random.default_rng(0).standard_normal((1, 16)).astype(np.float32)
    queue = dev.queue
    enqueue = cl.enqueue_nd_range_kernel
    calls = plan.calls

    def bare_submit():
        for kernel, gsize, lsize in calls:
            enqueue(queue, kernel, gsize, lsize)

    def bare():
        bare_submit()
        queue.finish()

    def bare_upload_submit():
        cl.enqueue_copy(queue, plan.input_slots[0][1], x, is_blocking=False)
        bare_submit()

    def bare_with_copies():
        cl.enqueue_copy(queue, plan.input_slots[0][1], x, is_blocking=False)
        bare_submit()
        out = np.empty((1, 16), np.float32)
        cl.enqueue_copy(queue, out, plan.output_slots[0][1], is_blocking=False)
        queue.finish()

    one = Executor(plan, 1)
    two = Executor(plan, 2)
    profiled = Executor(plan, 1, profile=True)
    runner = AsyncRunner(plan)
    session = InferenceSession(model.SerializeToString(), device=dev)
    feeds = {"x": x}

    def streamed():
        pending = [runner.submit([x]) for _ in range(4)]
        for p in pending:
            p.result()

    variants = [
        ("pyopencl enqueue loop, submit only", bare_submit, queue.finish),
        ("pyopencl upload + loop, submit only", bare_upload_submit, queue.finish),
        ("clnet Executor, submit only", lambda: one.submit([x]), one.finish),
        ("pyopencl enqueue loop + finish", bare, None),
        ("pyopencl loop + upload/download", bare_with_copies, None),
        ("clnet Plan.run", lambda: plan.run([x]), None),
        ("clnet InferenceSession.run", lambda: session.run(None, feeds), None),
        ("clnet Executor, 1 queue + events", lambda: one.run([x]), None),
        ("clnet Executor, 2 queues", lambda: two.run([x]), None),
        ("clnet Executor, profiled", lambda: profiled.run([x]), None),
        ("clnet run_async x4, per inference", streamed, None),
    ]
    rows = round_robin_us(variants, args.iters)
    rows[-1] = (rows[-1][0], rows[-1][1] / 4)
    queue.finish()
    print(f"device: {dev.describe()}")
    print(f"{n} launches per inference, median of {args.iters} iterations")
    print(f"{'variant':<40}{'us/inference':>14}{'us/op':>9}")
    for name, us in rows:
        print(f"{name:<40}{us:>14.1f}{us / n:>9.2f}")


if __name__ == "__main__":
    main()
