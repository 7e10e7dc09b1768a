"""Model latency: clnet against onnxruntime (2 threads), same process, interleaved.

Blocks of runs alternate clnet / onnxruntime so that both see the same machine load;
the table reports medians and the ratio clnet / onnxruntime (lower is
better, <= 1.0 means clnet is at least as fast), clnet's launches per run
and session creation time, and the largest difference of any output
relative to onnxruntime's largest value.  `--corpus` adds the model corpus
of `tools/model_corpus.py` (exported once into `--cache`; `--wheels DIR`
adds the models shipped in downloaded wheels) and ends with the geometric
mean of the ratios.

    python tools/bench_models.py
    CLNET_DEVICE=1:0 python tools/bench_models.py --models resnet18 --runs 30
    CLNET_DEVICE=0:0 python tools/bench_models.py --corpus --runs 10 --json rows.json
    CLNET_DEVICE=0:0 python tools/bench_models.py --rnn [--policy rnn_fused_steps=false]

`--rnn` runs RECURRENT instead: one-node LSTM/GRU models at batch 1 (and a
CRNN's 2-layer BiLSTM), the shapes of speech and tagging models, where a
recurrent layer's per-step cost decides the latency.
"""
from __future__ import annotations

import argparse
import json
import math
import statistics
import time
from pathlib import Path

import numpy as np

import clnet
from clnet import zoo
import model_corpus

ZOO = {
    "resnet18": lambda: zoo.resnet18(),
    "mobilenet_v2": lambda: zoo.mobilenet_v2(),
    "bert_encoder": lambda: zoo.bert_encoder(layers=4, hidden=256, seq=128),
}


# name -> builder: LSTMs at T 100/300/600, input 64/128, hidden 64/128, one
# and both directions; GRUs with and without linear_before_reset; a CRNN head
RECURRENT = {
    f"lstm t{t} i{i} h{h}{' bi' if bi else ''}":
        (lambda t=t, i=i, h=h, bi=bi: zoo.recurrent("LSTM", t, i, h, bidirectional=bi))
    for t in (100, 300, 600) for i in (64, 128) for h in (64, 128) for bi in (False, True)}
RECURRENT.update({
    f"gru t100 i64 h{h} lbr{lbr}":
        (lambda h=h, lbr=lbr: zoo.recurrent("GRU", 100, 64, h, linear_before_reset=lbr))
    for h in (64, 128) for lbr in (0, 1)})
RECURRENT["crnn bilstm2 t48 h48"] = lambda: zoo.recurrent("LSTM", 48, 48, 48, layers=2,
                                                          bidirectional=True)


def zoo_loader(build):
    """A loader of (serialized model, feeds) for a zoo builder."""
    def load():
        model = build()
        return model.SerializeToString(), feeds_for(model)
    return load


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


def bench(name: str, load, runs: int, threads: int, device, precision: str,
          policy=None) -> dict:
    """One model's row; {"model", "error"} where either runtime cannot run it."""
    loaded = load()
    if loaded is None:      # a corpus entry that cannot be made here (dynamo export)
        return None
    data, feeds = loaded
    data = str(data) if isinstance(data, Path) else data
    start = time.perf_counter()
    try:
        cl_sess = clnet.InferenceSession(data, device=device, precision=precision,
                                         policy=policy)
        load_s = time.perf_counter() - start
        got = cl_sess.run(None, feeds)
    except Exception as exc:  # noqa: BLE001 - any failure is a row saying why
        return {"model": name, "error": f"{type(exc).__name__}: {str(exc).splitlines()[0][:160]}"}
    try:
        ort_sess = ort_session(data, threads)
        want = ort_sess.run(None, feeds)
    except Exception as exc:  # noqa: BLE001
        return {"model": name, "error": f"onnxruntime: {str(exc).splitlines()[0][:160]}"}
    launches = len(cl_sess.last_plan.calls)
    err = model_corpus.rel_err(got, want)
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
            "launches": launches, "load_s": load_s, "rel_err": err}


def summary(rows: list) -> list:
    """Closing lines: geometric mean of the ratios, counts above 1.0 and 1.5,
    and the models not run."""
    ratios = [r["ratio"] for r in rows if "ratio" in r]
    failed = [r for r in rows if "error" in r]
    lines = []
    if ratios:
        geomean = math.exp(sum(math.log(x) for x in ratios) / len(ratios))
        lines.append(f"geometric mean ratio {geomean:.2f} over {len(ratios)} models; "
                     f"{sum(x > 1.0 for x in ratios)} above 1.0, "
                     f"{sum(x > 1.5 for x in ratios)} above 1.5")
    if failed:
        lines.append(f"not run ({len(failed)}, left out of the mean): "
                     + ", ".join(r["model"] for r in failed))
    return lines


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", default=None, help="comma-separated names, zoo or corpus")
    ap.add_argument("--corpus", action="store_true", help="add the model corpus")
    ap.add_argument("--cache", type=Path, default=model_corpus.default_cache(),
                    help="folder of the corpus's exported models")
    ap.add_argument("--wheels", type=Path, default=None,
                    help="folder of downloaded wheels whose .onnx files join the corpus")
    ap.add_argument("--runs", type=int, default=20)
    ap.add_argument("--threads", type=int, default=2, help="onnxruntime intra-op threads")
    ap.add_argument("--device", default=None)
    ap.add_argument("--precision", default="fp32", choices=["fp32", "fp16"])
    ap.add_argument("--rnn", action="store_true", help="the RECURRENT models instead")
    ap.add_argument("--policy", action="append", default=[], metavar="NAME=VALUE",
                    help="a kernel policy switch for clnet (repeatable)")
    ap.add_argument("--json", type=Path, default=None, help="write the rows here")
    args = ap.parse_args()
    # --models picks from everything; without it: the zoo, plus the corpus
    # with --corpus (which includes --wheels), or plus the shipped models.
    loaders = {name: zoo_loader(build) for name, build in ZOO.items()}
    shipped = model_corpus.shipped(args.wheels, args.cache) if args.wheels else {}
    corpus = model_corpus.corpus(args.cache, args.wheels)
    loaders.update(corpus)
    default = list(loaders) if args.corpus else list(ZOO) + list(shipped)
    loaders.update({name: zoo_loader(build) for name, build in RECURRENT.items()})
    if args.rnn:
        default = list(RECURRENT)
    names = args.models.split(",") if args.models else default
    unknown = [n for n in names if n not in loaders]
    if unknown:
        ap.error(f"unknown models {unknown}; known: {', '.join(loaders)}")
    import onnxruntime
    from clnet.device import select_device
    from clnet.policy import parse_override
    dev = select_device(args.device)
    header = [f"device: {dev.describe()}",
              f"onnxruntime {onnxruntime.__version__}, {args.threads} threads; clnet "
              f"{args.precision} {' '.join(args.policy)}; {args.runs} runs in alternating blocks; "
              f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}"]
    print("\n".join(header))
    width = max(14, *(len(n) for n in names))
    print(f"{'model':{width}s} {'clnet ms':>9} {'ort ms':>8} {'ratio':>6} {'clnet min':>9} "
          f"{'ort min':>8} {'launches':>8} {'load s':>7} {'rel err':>8}")
    rows = []
    for name in names:
        r = bench(name, loaders[name], args.runs, args.threads, dev, args.precision,
                  parse_override(args.policy))
        if r is None:
            continue
        rows.append(r)
        if "error" in r:
            print(f"{name:{width}s} not run: {r['error']}", flush=True)
            continue
        print(f"{name:{width}s} {r['clnet_ms']:>9.2f} {r['ort_ms']:>8.2f} {r['ratio']:>6.2f} "
              f"{r['clnet_min_ms']:>9.2f} {r['ort_min_ms']:>8.2f} {r['launches']:>8d} "
              f"{r['load_s']:>7.2f} {r['rel_err']:>8.1e}", flush=True)
    print("\n".join(summary(rows)))
    if args.json:
        args.json.write_text(json.dumps({"header": header, "rows": rows}, indent=1) + "\n")


if __name__ == "__main__":
    main()
