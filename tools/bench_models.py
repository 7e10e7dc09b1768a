"""Model latency: clnet against onnxruntime (2 threads), same process, interleaved.

Blocks of runs alternate clnet / onnxruntime so that both see the same machine load;
the table reports medians and the ratio clnet / onnxruntime (lower is
better, <= 1.0 means clnet is at least as fast), plus clnet's session
creation time.

    python tools/bench_models.py
    CLNET_DEVICE=1:0 python tools/bench_models.py --models resnet18 --runs 30
"""
from __future__ import annotations

import argparse
import statistics
import time

import numpy as np

import clnet
from clnet import zoo

MODELS = {
    "resnet18": lambda: zoo.resnet18(),
    "mobilenet_v2": lambda: zoo.mobilenet_v2(),
    "bert_encoder": lambda: zoo.bert_encoder(layers=4, hidden=256, seq=128),
}


def feeds_for(model) -> dict:
    rng = np.random.default_rng(0)
    feeds = {}
    for inp in model.graph.input:
        shape = [d.dim_value for d in inp.type.tensor_type.shape.dim]
        if inp.type.tensor_type.elem_type == 7:   # int64 token ids
            feeds[inp.name] = rng.integers(0, 1000, shape, dtype=np.int64)
        else:
            feeds[inp.name] = rng.standard_normal(shape).astype(np.float32)
    return feeds


def ort_session(data: bytes, threads: int):
    import onnxruntime as ort
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    return ort.InferenceSession(data, opts, providers=["CPUExecutionProvider"])


WARMUP_S = 0.1    # untimed calls before each block: at least one, at least this long


def timed(fn, count: int) -> list:
    """Wall times of `count` calls after untimed ones (WARMUP_S)."""
    start = time.perf_counter()
    fn()
    while time.perf_counter() - start < WARMUP_S:
        fn()
    times = []
    for _ in range(count):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return times


def bench(name: str, runs: int, threads: int, device, precision: str) -> dict:
    model = MODELS[name]()
    data = model.SerializeToString()
    feeds = feeds_for(model)
    start = time.perf_counter()
    try:
        cl_sess = clnet.InferenceSession(data, device=device, precision=precision)
    except clnet.ClnetError as exc:
        return {"model": name, "error": str(exc).splitlines()[0][:100]}
    load_s = time.perf_counter() - start
    ort_sess = ort_session(data, threads)
    want = ort_sess.run(None, feeds)[0]
    got = cl_sess.run(None, feeds)[0]
    err = float(np.abs(got - want).max() / (np.abs(want).max() + 1e-6))
    cl_times, ort_times = [], []
    # Alternating blocks of runs, each after untimed runs (100 ms of them):
    # both see the same machine load, and neither is timed while the other's
    # worker threads still spin (onnxruntime's pool spins after each run and
    # took the cores from the next clnet run when runs alternated one by one;
    # on Zen 3 its spin slowed the next ~70 ms of clnet runs, ResNet-18's
    # from 18 to 23 ms, and with a single untimed run the BERT encoder's clnet
    # median was 10.1-10.9 ms against 8.0 ms on its own).
    block = max(1, runs // 4)
    for start in range(0, runs, block):
        count = min(block, runs - start)
        cl_times += timed(lambda: cl_sess.run(None, feeds), count)
        ort_times += timed(lambda: ort_sess.run(None, feeds), count)
    cl_ms, ort_ms = statistics.median(cl_times) * 1e3, statistics.median(ort_times) * 1e3
    return {"model": name, "clnet_ms": cl_ms, "ort_ms": ort_ms, "ratio": cl_ms / ort_ms,
            "clnet_min_ms": min(cl_times) * 1e3, "ort_min_ms": min(ort_times) * 1e3,
            "load_s": load_s, "rel_err": err}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", default=",".join(MODELS))
    ap.add_argument("--runs", type=int, default=20)
    ap.add_argument("--threads", type=int, default=2, help="onnxruntime intra-op threads")
    ap.add_argument("--device", default=None)
    ap.add_argument("--precision", default="fp32", choices=["fp32", "fp16"])
    args = ap.parse_args()
    import onnxruntime
    from clnet.device import select_device
    dev = select_device(args.device)
    print(f"device: {dev.describe()}")
    print(f"onnxruntime {onnxruntime.__version__}, {args.threads} threads; clnet "
          f"{args.precision}; {args.runs} runs in alternating blocks; "
          f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}")
    print(f"{'model':14s} {'clnet ms':>9} {'ort ms':>8} {'ratio':>6} {'clnet min':>9} "
          f"{'ort min':>8} {'load s':>7} {'rel err':>8}")
    for name in args.models.split(","):
        r = bench(name, args.runs, args.threads, dev, args.precision)
        if "error" in r:
            print(f"{name:14s} not run: {r['error']}")
            continue
        print(f"{name:14s} {r['clnet_ms']:>9.1f} {r['ort_ms']:>8.1f} {r['ratio']:>6.2f} "
              f"{r['clnet_min_ms']:>9.1f} {r['ort_min_ms']:>8.1f} {r['load_s']:>7.2f} "
              f"{r['rel_err']:>8.1e}", flush=True)


if __name__ == "__main__":
    main()
