"""Per-node times of a model, or single ops at model shapes: clnet against onnxruntime.

Both run in this process in alternating blocks (onnxruntime with 2 threads
and its own profiler, clnet's plan on a profiling queue), so that both see
the same machine load.  clnet's launches are summed per ONNX node; the
onnxruntime column lists its (fused, renamed) nodes in execution order, so
the two columns line up only roughly: the point is where the time goes on
each side, and the two sums.

    CLNET_DEVICE=0:0 python tools/bench_nodes.py --model resnet18
    python tools/bench_nodes.py --model bert_encoder --blocks 8

`--ops` instead times every case of `tools/op_cases.py` (one op, or a short
chain, at a shape and broadcasting pattern real models use), each as its own
model, clnet (as it fuses and builds it) against onnxruntime in alternating
blocks of runs.  Beside the wall times per run it reports clnet's kernel
time (OpenCL profiling events of a second, profiled session, summed over
the run's launches), so that a ratio above 1.5 reads either as per-run
overhead (upload, download, queue finish: ~0.1 ms on PoCL) or as a kernel
slower than all of onnxruntime's run.

    CLNET_DEVICE=0:0 python tools/bench_nodes.py --ops --json ops.json
    python tools/bench_nodes.py --ops --filter 'Softmax|LayerNorm' --runs 40
"""
from __future__ import annotations

import argparse
import collections
import json
import os
import re
import shutil
import statistics
import tempfile
import time

import pyopencl as cl

import clnet
from clnet.device import select_device

from bench_models import ZOO, feeds_for, ort_session, timed
from model_corpus import rel_err

FLAG_RATIO = 1.5    # the bound on clnet / onnxruntime per op


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


def kernel_ms(session) -> float:
    """Sum of the last profiled run's kernel times (copies left out)."""
    return sum(r.times_ns()[1] - r.times_ns()[0]
               for r in session.last_records if r.kind == "kernel") * 1e-6


def op_row(case, dev, runs: int, threads: int) -> dict:
    """One case's row: wall ms per run of both, clnet's kernel ms, error."""
    row = {"op": case.op, "shape": case.shape}
    data, feeds = case.model().SerializeToString(), case.feeds
    try:
        ours = clnet.InferenceSession(data, device=dev)
        profiled = clnet.InferenceSession(data, device=dev, profile=True)
        got = ours.run(None, feeds)
    except Exception as exc:  # noqa: BLE001 - a failure is a row saying why
        return {**row, "error": f"{type(exc).__name__}: {str(exc).splitlines()[0][:120]}"}
    reference = ort_session(data, threads)
    want = reference.run(None, feeds)
    cl_times, ort_times, kernel_times = [], [], []
    # alternating blocks, as bench_models.bench (onnxruntime's spinning
    # threads must not overlap clnet's timed runs); the profiled session's
    # runs sit between the two so that their kernels see the same load
    block = max(1, runs // 4)
    for start in range(0, runs, block):
        count = min(block, runs - start)
        cl_times += timed(lambda: ours.run(None, feeds), count)
        for _ in range(max(1, count // 2)):
            profiled.run(None, feeds)
            kernel_times.append(kernel_ms(profiled))
        ort_times += timed(lambda: reference.run(None, feeds), count)
    cl_ms, ort_ms = statistics.median(cl_times) * 1e3, statistics.median(ort_times) * 1e3
    kernel = statistics.median(kernel_times)
    return {**row, "clnet_ms": cl_ms, "clnet_min_ms": min(cl_times) * 1e3,
            "ort_ms": ort_ms, "ort_min_ms": min(ort_times) * 1e3, "ratio": cl_ms / ort_ms,
            "kernel_ms": kernel, "kernel_min_ms": min(kernel_times),
            "kernel_ratio": kernel / ort_ms, "launches": len(ours.last_plan.calls),
            "rel_err": rel_err(got, want)}


def flag(row: dict) -> str:
    """'' within FLAG_RATIO; else "KERNEL" where clnet's kernels alone exceed
    it, by medians and by minima (the least loaded runs), else "overhead"."""
    if "ratio" not in row or row["ratio"] <= FLAG_RATIO:
        return ""
    slow = (row["kernel_ratio"] > FLAG_RATIO
            and row["kernel_min_ms"] > FLAG_RATIO * row["ort_min_ms"])
    return "KERNEL" if slow else "overhead"


def format_row(r: dict) -> str:
    if "error" in r:
        return f"  {r['shape'][:44]:44s} not run: {r['error']}"
    return (f"  {r['shape'][:44]:44s} {r['clnet_ms']:8.3f} {r['clnet_min_ms']:7.3f} "
            f"{r['ort_ms']:8.3f} {r['ort_min_ms']:7.3f} {r['ratio']:6.2f} "
            f"{r['kernel_ms']:8.3f} {r['kernel_ratio']:6.2f} {r['launches']:6d} "
            f"{r['rel_err']:8.1e}  {flag(r)}")


def ops_report(rows: list) -> list:
    """The per-op tables and the closing summary, as lines."""
    lines, op = [], None
    head = (f"  {'shape':44s} {'clnet ms':>8s} {'min':>7s} {'ort ms':>8s} {'min':>7s} "
            f"{'ratio':>6s} {'kern ms':>8s} {'k/ort':>6s} {'launch':>6s} {'rel err':>8s}")
    for r in rows:
        if r["op"] != op:
            op = r["op"]
            lines += ["", op, head]
        lines.append(format_row(r))
    ran = [r for r in rows if "ratio" in r]
    slow = sorted((r for r in ran if flag(r) == "KERNEL"),
                  key=lambda r: r["kernel_ms"] - r["ort_ms"], reverse=True)
    lines += ["", f"{len(ran)} cases; {sum(r['ratio'] > FLAG_RATIO for r in ran)} above "
              f"{FLAG_RATIO}x onnxruntime, of which {len(slow)} by kernel time alone; "
              f"{len(rows) - len(ran)} not run"]
    lines += [f"  kernel {r['kernel_ms']:.3f} ms vs ort {r['ort_ms']:.3f} ms "
              f"(+{r['kernel_ms'] - r['ort_ms']:.3f}): {r['op']} {r['shape']}" for r in slow]
    return lines


def ops_main(args) -> None:
    import onnxruntime
    import op_cases
    dev = select_device(args.device)
    pattern = re.compile(args.filter) if args.filter else None
    cases = [c for c in op_cases.all_cases() if pattern is None or pattern.search(c.name)]
    header = [f"device: {dev.describe()}",
              f"onnxruntime {onnxruntime.__version__}, {args.threads} threads; {args.runs} "
              f"runs each in alternating blocks; {len(cases)} cases; "
              f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}"]
    print("\n".join(header), flush=True)
    rows = []
    for case in cases:     # each row as it comes, then the tables
        rows.append(op_row(case, dev, args.runs, args.threads))
        print(f"{case.op:24s}" + format_row(rows[-1]), flush=True)
    print("\n".join(ops_report(rows)))
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"header": header, "rows": rows}, f, indent=1)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="resnet18", choices=sorted(ZOO))
    ap.add_argument("--device", default=None)
    ap.add_argument("--blocks", type=int, default=12, help="alternating blocks of 5 runs")
    ap.add_argument("--threads", type=int, default=2, help="onnxruntime intra-op threads")
    ap.add_argument("--ops", action="store_true", help="single ops at model shapes instead")
    ap.add_argument("--runs", type=int, default=40, help="--ops: runs of each, in 4 blocks")
    ap.add_argument("--filter", default=None, help="--ops: regex on 'op shape'")
    ap.add_argument("--json", default=None, help="--ops: write the rows here")
    args = ap.parse_args()
    if args.ops:
        ops_main(args)
        return

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
