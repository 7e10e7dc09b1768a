"""Per-launch kernel times of a model's plan: alone and back to back.

Each launch of the plan is timed twice with OpenCL event profiling: in
sequence, the whole plan enqueued as a model run does (median over runs),
and alone, the same launch repeated with its operands hot in the caches
(median).  The difference shows which kernels depend on data that a real
run has to fetch from memory (large filters, for one).  Optionally every
3x3 stride-1 conv is forced to one algorithm.

    CLNET_DEVICE=0:0 python tools/bench_plan.py --model resnet18
    python tools/bench_plan.py --model resnet18 --launches
    python tools/bench_plan.py --model resnet18 --algorithm im2col
"""
from __future__ import annotations

import argparse
import collections
import statistics

import numpy as np
import pyopencl as cl

import clnet
from clnet import zoo
from clnet.device import select_device
from clnet.tuning import CONV_ALGORITHMS

from bench_models import feeds_for   # noqa: E402  (tools/ is on the path when run)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="resnet18", help="a clnet.zoo builder")
    parser.add_argument("--device", default=None)
    parser.add_argument("--runs", type=int, default=25)
    parser.add_argument("--algorithm", choices=CONV_ALGORITHMS, default=None,
                        help="force every 3x3 stride-1 conv to this algorithm")
    parser.add_argument("--launches", action="store_true", help="one line per launch")
    args = parser.parse_args()

    dev = select_device(args.device)
    model = getattr(zoo, args.model)()
    feeds = feeds_for(model)
    session = clnet.InferenceSession(model.SerializeToString(), device=dev,
                                     policy={"conv_algorithm": args.algorithm})
    session.run(None, feeds)
    plan = session.last_plan
    queue = dev.new_queue(profiling=True)

    in_sequence = []
    for _ in range(args.runs):
        events = [cl.enqueue_nd_range_kernel(queue, k, g, l) for k, g, l in plan.calls]
        queue.finish()
        in_sequence.append([(e.profile.end - e.profile.start) * 1e-6 for e in events])
    seq = np.median(np.array(in_sequence), axis=0)
    alone = []
    for kernel, gsize, lsize in plan.calls:
        times = []
        for _ in range(max(5, args.runs // 3)):
            event = cl.enqueue_nd_range_kernel(queue, kernel, gsize, lsize)
            event.wait()
            times.append((event.profile.end - event.profile.start) * 1e-6)
        alone.append(statistics.median(times))

    print(f"device: {dev.describe()}")
    print(f"model {args.model}, {len(plan.calls)} launches, algorithm "
          f"{args.algorithm or 'chosen per conv'}; median ms over {args.runs} runs")
    by_entry = collections.defaultdict(lambda: [0.0, 0.0])
    if args.launches:
        print(f"{'kernel':18s} {'node':34s} {'sequence':>9s} {'alone':>8s}")
    for launch, s, a in zip(plan.launches, seq, alone):
        by_entry[launch.entry][0] += s
        by_entry[launch.entry][1] += a
        if args.launches:
            print(f"{launch.entry:18s} {launch.node[:34]:34s} {s:9.3f} {a:8.3f}")
    print(f"{'kernel':18s} {'sequence':>9s} {'alone':>8s}")
    for entry, (s, a) in sorted(by_entry.items(), key=lambda kv: -kv[1][0]):
        print(f"{entry:18s} {s:9.3f} {a:8.3f}")
    totals = np.array(in_sequence).sum(axis=1)
    print(f"{'total':18s} {float(np.median(totals)):9.3f} {sum(alone):8.3f}")


if __name__ == "__main__":
    main()
