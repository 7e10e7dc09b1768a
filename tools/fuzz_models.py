"""Fuzz clnet's loader and runtime with mutated ONNX models.

Each case is a seed model (tools/fuzz_mutate.py: a conv net, a
transformer-ish block, control flow) with one to three byte-level or
structural mutations, loaded and run with seeded random inputs in a child
process under a timeout, and classified:

    success        it loaded and ran
    clnet-error    a ClnetError (the CLI: exit 1, one line on stderr)
    exception      any other exception: a defect
    signal         the child died by a signal (segfault, abort): a defect
    hang           it ran past the timeout: a defect

Children are forked from a process that imported clnet but never touched
OpenCL, so a case costs its load and run, not an interpreter start; every
--cli-every'th case goes through ``python -m clnet.cli run`` instead.
Case i of seed S is reproduced by ``--seed S --first i --cases 1``.

    python tools/fuzz_models.py --cases 200 --seed 0
    python tools/fuzz_models.py --minutes 15 --seed 1 --save defects/
"""
from __future__ import annotations

import argparse
import collections
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(1, str(Path(__file__).resolve().parent.parent))

import fuzz_mutate   # noqa: E402  (tools/ is on the path)

DEFECTS = ("exception", "signal", "hang")
EXIT_CLNET_ERROR, EXIT_EXCEPTION = 3, 4
MAX_FEED_ELEMENTS = 1 << 22


def feeds_for(session, seed: int) -> dict:
    """Seeded random inputs; symbolic dims are 2; a declared shape too large
    to fill is fed as a broadcast zero (no host memory)."""
    rng = np.random.default_rng(seed)
    feeds = {}
    for arg in session.get_inputs():
        shape = tuple(d if isinstance(d, int) else 2 for d in (arg.shape or ()))
        dtype = arg.dtype if arg.dtype is not None and arg.dtype != object else np.float32
        if int(np.prod(shape, dtype=np.float64)) > MAX_FEED_ELEMENTS:
            feeds[arg.name] = np.broadcast_to(np.zeros((), dtype), shape)
        elif np.dtype(dtype).kind == "f":
            feeds[arg.name] = rng.standard_normal(shape).astype(dtype)
        elif np.dtype(dtype).kind == "b":
            feeds[arg.name] = rng.random(shape) < 0.5
        else:
            feeds[arg.name] = rng.integers(0, 4, size=shape).astype(dtype)
    return feeds


def _child(path: str, device, seed: int, report: str) -> None:
    """In the forked child: load and run; the exit code says how it went."""
    import clnet
    from clnet.errors import ClnetError

    code = 0
    try:
        session = clnet.InferenceSession(path, device=device)
        session.run(None, feeds_for(session, seed))
    except ClnetError as exc:
        code, text = EXIT_CLNET_ERROR, f"{type(exc).__name__}: {exc}"
    except BaseException:   # noqa: BLE001 - what the fuzzer looks for
        code, text = EXIT_EXCEPTION, traceback.format_exc()
    if code:
        Path(report).write_text(text[-4000:])
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)   # no atexit handlers: the parent's state is not the child's


def run_forked(path: str, device, seed: int, timeout: float) -> tuple:
    """(outcome, detail) of one case in a forked child."""
    report = path + ".report"
    pid = os.fork()
    if pid == 0:
        try:
            _child(path, device, seed, report)
        finally:
            os._exit(EXIT_EXCEPTION)
    deadline = time.monotonic() + timeout
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            break
        if time.monotonic() > deadline:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            return "hang", f"over {timeout:.0f} s"
        time.sleep(0.005)
    detail = Path(report).read_text() if os.path.exists(report) else ""
    if os.WIFSIGNALED(status):
        return "signal", signal.Signals(os.WTERMSIG(status)).name
    code = os.WEXITSTATUS(status)
    if code == 0:
        return "success", ""
    if code == EXIT_CLNET_ERROR:
        return "clnet-error", detail
    return "exception", detail or f"exit {code}"


def run_cli(path: str, device, timeout: float) -> tuple:
    """(outcome, detail) of `python -m clnet.cli run PATH`."""
    cmd = [sys.executable, "-m", "clnet.cli", "run", path]
    if device:
        cmd += ["--device", device]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return "hang", f"CLI over {timeout:.0f} s"
    err = proc.stderr.strip()
    if proc.returncode < 0:
        return "signal", f"CLI {signal.Signals(-proc.returncode).name}: {err[-300:]}"
    if proc.returncode == 0:
        return "success", ""
    lines = err.splitlines()
    if proc.returncode == 1 and len(lines) == 1 and lines[0].startswith("clnet: error:"):
        return "clnet-error", lines[0]
    return "exception", f"CLI exit {proc.returncode}: {err[-1000:]}"


def fuzz(cases: int, seed: int, device, timeout: float, cli_every: int, first: int = 0,
         minutes: float = 0.0, save=None, verbose: bool = False) -> dict:
    """Run the cases; returns the report (counts, defects, duration)."""
    seeds = {name: make().SerializeToString() for name, make in fuzz_mutate.SEEDS.items()}
    counts = collections.Counter()
    defects = []
    start = time.monotonic()
    folder = tempfile.mkdtemp(prefix="clnet-fuzz-")
    index = first
    while True:
        if minutes and time.monotonic() - start > minutes * 60:
            break
        if not minutes and index >= first + cases:
            break
        rnd = random.Random(f"{seed}-{index}")
        name, mutations, data = fuzz_mutate.make_case(seeds, rnd)
        path = os.path.join(folder, f"case{index}.onnx")
        Path(path).write_bytes(data)
        via_cli = cli_every > 0 and index % cli_every == cli_every - 1
        outcome, detail = (run_cli(path, device, timeout) if via_cli
                           else run_forked(path, device, index, timeout))
        counts[outcome] += 1
        if verbose:
            print(f"case {index} {name} {'+'.join(mutations)}: {outcome} "
                  f"{detail.strip().splitlines()[-1][:150] if detail.strip() else ''}",
                  flush=True)
        if outcome in DEFECTS:
            defects.append({"case": index, "seed": name, "mutations": mutations,
                            "cli": via_cli, "outcome": outcome, "detail": detail[-1500:]})
            if save:
                Path(save).mkdir(parents=True, exist_ok=True)
                Path(save, f"case{index}-{outcome}.onnx").write_bytes(data)
        for leftover in (path, path + ".report"):
            if os.path.exists(leftover):
                os.unlink(leftover)
        index += 1
    os.rmdir(folder)
    return {"seed": seed, "first": first, "cases": index - first,
            "seconds": round(time.monotonic() - start, 1), "counts": dict(counts),
            "defects": defects}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=200)
    parser.add_argument("--minutes", type=float, default=0.0,
                        help="run cases until this much time has passed (overrides --cases)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--first", type=int, default=0, help="index of the first case")
    parser.add_argument("--device", default=os.environ.get("CLNET_DEVICE"))
    parser.add_argument("--timeout", type=float, default=60.0, help="seconds per case")
    parser.add_argument("--cli-every", type=int, default=10,
                        help="every Nth case through the CLI (0: never)")
    parser.add_argument("--save", default=None, help="folder for the models of defects")
    parser.add_argument("--json", default=None, help="write the report here")
    parser.add_argument("--verbose", "-v", action="store_true")
    args = parser.parse_args(argv)
    # the children's kernels come from PoCL's own cache; clnet's binary cache
    # is written by a thread that a forked child's os._exit would cut off
    os.environ.setdefault("CLNET_KERNEL_CACHE", "0")
    # the whole package imported once, before the forks (no OpenCL call is
    # made by importing): a child then costs its load and run only
    import clnet.runtime    # noqa: F401
    import clnet.ops        # noqa: F401

    report = fuzz(args.cases, args.seed, args.device, args.timeout, args.cli_every,
                  args.first, args.minutes, args.save, args.verbose)
    print(f"seed {report['seed']}: {report['cases']} cases in {report['seconds']} s: "
          + ", ".join(f"{k} {v}" for k, v in sorted(report["counts"].items())))
    for defect in report["defects"]:
        last = defect["detail"].strip().splitlines()[-1] if defect["detail"].strip() else ""
        print(f"  DEFECT case {defect['case']} ({defect['seed']} "
              f"{'+'.join(defect['mutations'])}{', CLI' if defect['cli'] else ''}): "
              f"{defect['outcome']}: {last[:200]}")
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=1))
    return 1 if report["defects"] else 0


if __name__ == "__main__":
    sys.exit(main())
