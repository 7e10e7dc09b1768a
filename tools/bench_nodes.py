"""Per-node times of a model: clnet's kernels beside onnxruntime's operators.

Both run in this process in alternating blocks (onnxruntime with 2 threads
and its own profiler, clnet's plan on a profiling queue), so that both see
the same machine load.  clnet's launches are summed per ONNX node; the
onnxruntime column lists its (fused, renamed) nodes in execution order, so
the two columns line up only roughly: the point is where the time goes on
each side, and the two sums.

    CLNET_DEVICE=0:0 python tools/bench_nodes.py --model resnet18
    python tools/bench_nodes.py --model bert_encoder --blocks 8
"""
from __future__ import annotations

import argparse
import collections
import json
import os
import shutil
import statistics
import tempfile

import numpy as np
import pyopencl as cl

import clnet
from clnet.device import select_device

from bench_models import ZOO, feeds_for, ort_session


def ort_node_times(profile_path: str) -> list:
    """[(node, median ms)] in execution order from onnxruntime's profile."""
    with open(profile_path) as f:
        events = json.load(f)
    times, order = collections.defaultdict(list), []
    for e in events:
        name = e.get("name", "")
        if e.get("cat") == "Node" and name.endswith("_kernel_time"):
            node = name[:-len("_kernel_time")]
            if node not in times:
                order.append(node)
            times[node].append(e["dur"] * 1e-3)
    return [(n, statistics.median(times[n])) for n in order]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="resnet18", choices=sorted(ZOO))
    ap.add_argument("--device", default=None)
    ap.add_argument("--blocks", type=int, default=12, help="alternating blocks of 5 runs")
    ap.add_argument("--threads", type=int, default=2, help="onnxruntime intra-op threads")
    args = ap.parse_args()

    import onnxruntime as ort
    dev = select_device(args.device)
    model = ZOO[args.model]()
    data, feeds = model.SerializeToString(), feeds_for(model)
    session = clnet.InferenceSession(data, device=dev)
    session.run(None, feeds)
    plan, queue = session.last_plan, dev.new_queue(profiling=True)

    profile_dir = tempfile.mkdtemp(prefix="clnet-ort-profile-")
    opts = ort.SessionOptions()
    opts.intra_op_num_threads, opts.inter_op_num_threads = args.threads, 1
    opts.enable_profiling = True
    opts.profile_file_prefix = os.path.join(profile_dir, "ort")
    reference = ort.InferenceSession(data, opts, providers=["CPUExecutionProvider"])

    ours = collections.defaultdict(list)
    for _ in range(args.blocks):
        for _ in range(5):
            reference.run(None, feeds)
        for _ in range(5):
            events = [cl.enqueue_nd_range_kernel(queue, k, g, l) for k, g, l in plan.calls]
            queue.finish()
            per_node = collections.OrderedDict()
            for launch, event in zip(plan.launches, events):
                ms = (event.profile.end - event.profile.start) * 1e-6
                node = launch.node.split("'")[1] if launch.node.count("'") >= 2 else launch.node
                per_node[node] = per_node.get(node, 0.0) + ms
            for node, ms in per_node.items():
                ours[node].append(ms)
    theirs = ort_node_times(reference.end_profiling())
    shutil.rmtree(profile_dir, ignore_errors=True)
    mine = [(node, statistics.median(v)) for node, v in ours.items()]

    print(f"device: {dev.describe()}")
    print(f"model {args.model}; median ms over {args.blocks * 5} runs each, alternating blocks")
    print(f"{'onnxruntime node':36s} {'ms':>7s}   {'clnet node':36s} {'ms':>7s}")
    for i in range(max(len(theirs), len(mine))):
        left = f"{theirs[i][0][:36]:36s} {theirs[i][1]:7.3f}" if i < len(theirs) else " " * 44
        right = f"{mine[i][0][:36]:36s} {mine[i][1]:7.3f}" if i < len(mine) else ""
        print(f"{left}   {right}")
    total_theirs, total_mine = sum(t for _, t in theirs), sum(t for _, t in mine)
    print(f"{'sum':36s} {total_theirs:7.3f}   {'sum':36s} {total_mine:7.3f}"
          f"   ratio {total_mine / total_theirs:.2f}")


if __name__ == "__main__":
    main()
