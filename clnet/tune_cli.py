"""`clnet tune`: search GEMM parameters per problem shape on one device.

The search space is data (SPACE); every candidate is built, run, and checked
against a float64 numpy reference before its time counts.  The fastest
verified candidate per shape is merged into the device's tuning file
(clnet/tuning.py), which the runtime reads when it lowers a model.
"""
from __future__ import annotations

import itertools
import time
from typing import Callable, Iterable, Optional

import click
import numpy as np

from .compile import build_program
from .errors import ClnetError
from .quirks import cpu_kernels, vector_width
from .tuning import class_defaults, save_tuning

# Candidate values per parameter; "VW" values beyond the device's native
# width are dropped.  KSPLIT > 1 only for shapes with few output tiles.
SPACE = {
    "TM": (4, 6, 8),
    "TN_VECTORS": (1, 2),        # TN = VW * this
    "VW": (8, 16),
    "LSIZE": ((1, 1, 1), None),
    "M_FIRST": (0, 1),
    "KSPLIT": (1, 4),
    "NT": (1, 2, 4),             # tiles per work-item
    "GROUP_M": (1, 16),          # grouped tile order (M_FIRST does not apply)
    "NP": (1, 2),                # B panels side by side (matrix-vector shapes, M <= 2)
}
QUICK_SPACE = {"TM": (4, 6, 8), "TN_VECTORS": (1, 2), "VW": (16,), "LSIZE": ((1, 1, 1),),
               "M_FIRST": (0,), "KSPLIT": (1,), "NT": (1, 2), "GROUP_M": (16,), "NP": (1, 2)}
# --quick on GPUs and other devices: work-groups of many work-items, not one
QUICK_SPACE_GPU = {"TM": (2, 4, 8), "TN_VECTORS": (1, 2), "VW": (4,),
                   "LSIZE": (None, (16, 16, 1)), "M_FIRST": (0, 1), "KSPLIT": (1, 4),
                   "NT": (1,), "GROUP_M": (1,)}


def quick_space(dev) -> dict:
    return QUICK_SPACE if cpu_kernels(dev) else QUICK_SPACE_GPU


def candidates(dev, M: int, N: int, K: int, space: Optional[dict] = None) -> list:
    """The parameter sets worth trying for one shape on one device."""
    space = space or SPACE
    native = vector_width(dev)
    # split K only where the output tiles alone cannot fill the device
    few_tiles = 64 if cpu_kernels(dev) else 64 * dev.compute_units
    found, seen = [], set()
    for tm, tnv, vw, lsize, m_first, ksplit, nt, group_m, np_ in itertools.product(
            space["TM"], space["TN_VECTORS"], space["VW"], space["LSIZE"],
            space["M_FIRST"], space["KSPLIT"], space.get("NT", (1,)),
            space.get("GROUP_M", (1,)), space.get("NP", (1,))):
        vw = min(vw, native)
        if np_ > 1 and (M > 2 or N < 4 * vw * tnv):
            continue
        tiles = -(-M // tm) * -(-N // (vw * tnv * np_))
        if ksplit > 1 and (tiles >= few_tiles or K < 64 * ksplit):
            continue
        if (nt > 1 and tiles < 16 * nt) or (group_m > 1 and m_first):
            continue
        params = {"TM": min(tm, M), "TN": vw * tnv, "VW": vw, "LSIZE": lsize,
                  "M_FIRST": m_first, "KSPLIT": ksplit, "NT": nt, "GROUP_M": group_m}
        if np_ > 1:
            params["NP"] = np_
        key = tuple(sorted((k, str(v)) for k, v in params.items()))
        if key not in seen:
            seen.add(key)
            found.append(params)
    return found


class _Problem:
    """Host data and device buffers of one GEMM shape (shared by candidates)."""

    def __init__(self, dev, M: int, N: int, K: int, kind: str, half: bool, seed: int = 0):
        rng = np.random.default_rng(seed)
        self.dev, self.M, self.N, self.K, self.kind, self.half = dev, M, N, K, kind, half
        self.sdt = np.float16 if half else np.float32
        self.a = rng.standard_normal((M, K)).astype(self.sdt).astype(np.float32)
        self.b = rng.standard_normal((K, N)).astype(self.sdt).astype(np.float32)
        self.want = reference(self.a, self.b)

    def run(self, queue, params: dict, reps: int) -> Optional[float]:
        """Seconds per launch (min over reps) if the result is right, else None."""
        import pyopencl as cl

        from .ops.gemm import epilogue_args, gemm_launch_config, pack_a, pack_b
        ctx, mf = self.dev.context, cl.mem_flags
        a_packed = self.kind == "conv"
        a_host = pack_a(self.a[None], params["TM"])[0] if a_packed else self.a
        buf = lambda host: cl.Buffer(ctx, mf.READ_ONLY | mf.COPY_HOST_PTR,  # noqa: E731
                                     hostbuf=np.ascontiguousarray(host, self.sdt))
        a_buf, b_buf = buf(a_host), buf(pack_b(self.b, params["TN"]))
        size = self.M * self.N
        ksplit = int(params.get("KSPLIT", 1))
        c_buf = cl.Buffer(ctx, mf.READ_WRITE, size=max(size * ksplit, 1) * 4)
        defs, gsize, lsize = gemm_launch_config(params, self.M, self.N, 1, a_packed=a_packed)
        if self.half:
            defs["STORE_HALF"] = True
        prg = build_program(self.dev, "gemm", defs)
        one = np.array([1, 1, 0, 0], np.int32)
        zc = np.array([size, 0, self.N, size], np.int32)
        gemm = cl.Kernel(prg, "gemm")
        gemm.set_args(a_buf, b_buf, c_buf, None, None, np.int32(self.M), np.int32(self.N),
                      np.int32(self.K), np.int32(self.K), one, one, zc, np.int32(0),
                      np.int32(0), *epilogue_args())
        launches = [(gemm, gsize, lsize)]
        out_buf = c_buf
        if ksplit > 1:
            out_buf = cl.Buffer(ctx, mf.READ_WRITE, size=max(size, 1) * 4)
            red = cl.Kernel(prg, "gemm_reduce")
            red.set_args(c_buf, out_buf, None, None, np.int32(self.M), np.int32(self.N), one,
                         zc, np.int32(0), *epilogue_args())
            launches.append((red, (self.N, self.M, 1), None))
        times = []
        for rep in range(reps + 1):
            events = [cl.enqueue_nd_range_kernel(queue, k, g, l) for k, g, l in launches]
            events[-1].wait()
            if rep == 0:
                got = np.empty((self.M, self.N), self.sdt)
                cl.enqueue_copy(queue, got, out_buf)
                if not verified(got.astype(np.float32), self.want, self.half):
                    return None
                continue
            times.append(sum(e.profile.end - e.profile.start for e in events) * 1e-9)
        return min(times)


def reference(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """The product every candidate must reproduce (float64 on the host)."""
    return (a.astype(np.float64) @ b.astype(np.float64)).astype(np.float32)


def verified(got: np.ndarray, want: np.ndarray, half: bool) -> bool:
    scale = float(np.abs(want).max()) + 1e-6
    err = float(np.abs(got - want).max()) / scale
    return bool(np.isfinite(got).all()) and err < (1e-2 if half else 1e-4)


def tune_gemm(dev, shapes: Iterable, *, half: bool = False, space: Optional[dict] = None,
              reps: int = 3, progress: Optional[Callable] = None) -> list:
    """Best verified parameters per (M, N, K, kind); entries for save_tuning."""
    queue = dev.new_queue(profiling=True)
    entries = []
    for M, N, K, kind in shapes:
        problem = _Problem(dev, M, N, K, kind, half)
        best, rejected = None, 0
        trials = candidates(dev, M, N, K, space)
        for params in trials:
            try:
                seconds = problem.run(queue, params, reps)
            except (ClnetError, RuntimeError) as exc:
                seconds, params = None, dict(params, error=str(exc)[:80])
            if seconds is None:
                rejected += 1
                continue
            if best is None or seconds < best[0]:
                best = (seconds, params)
        entry = {"shape": (M, N, K), "kind": kind, "rejected": rejected, "tried": len(trials)}
        if best is not None:
            entry.update(params=best[1], gflops=2.0 * M * N * K / best[0] * 1e-9)
        entries.append(entry)
        if progress:
            progress(entry)
    return entries


def plan_kernel_seconds(plan, runs: int) -> float:
    """Kernel time of one run of a plan: the sum of its launches' profiled
    times, the minimum over `runs` runs."""
    import pyopencl as cl

    queue = plan.dev.new_queue(profiling=True)
    best = None
    for _ in range(runs):
        events = [cl.enqueue_nd_range_kernel(queue, k, g, l) for k, g, l in plan.calls]
        queue.finish()
        total = sum(e.profile.end - e.profile.start for e in events) * 1e-9
        best = total if best is None else min(best, total)
    return best


def reference_conv(x: np.ndarray, w: np.ndarray, b: np.ndarray, pads) -> np.ndarray:
    """relu(conv(x, w) + b) for a stride-1, undilated, ungrouped 2-D conv, in float64."""
    kh, kw = w.shape[2:]
    xp = np.pad(x.astype(np.float64), ((0, 0), (0, 0), (pads[0], pads[2]), (pads[1], pads[3])))
    windows = np.lib.stride_tricks.sliding_window_view(xp, (kh, kw), axis=(2, 3))
    y = np.einsum("nchwij,mcij->nmhw", windows, w.astype(np.float64), optimize=True)
    return np.maximum(y + b.reshape(1, -1, 1, 1), 0.0)


def winograd_candidates(model) -> list:
    """(x shape, w shape, attrs) of a model's convs that Winograd can run."""
    from . import zoo
    found = []
    for x_shape, w_shape, attrs in zoo.conv_shapes(model):
        if tuple(w_shape[2:]) == (3, 3) and attrs.get("group", 1) == 1 \
                and all(v == 1 for v in attrs.get("strides", [1, 1])) \
                and all(v == 1 for v in attrs.get("dilations", [1, 1])) \
                and attrs.get("auto_pad", "NOTSET") in ("NOTSET", b"NOTSET") \
                and all(d > 0 for d in x_shape[1:]):
            found.append(((max(x_shape[0], 1),) + tuple(x_shape[1:]), w_shape, attrs))
    return found


def tune_conv_algorithms(dev, model, reps: int = 3,
                         progress: Optional[Callable] = None) -> list:
    """The fastest verified algorithm per 3x3 stride-1 conv of a model (fp32);
    entries for the tuning file's conv3x3 table."""
    from onnx import numpy_helper

    from . import zoo
    from .runtime import InferenceSession
    from .tuning import CONV_ALGORITHMS

    entries = []
    for x_shape, w_shape, attrs in winograd_candidates(model):
        conv = zoo.single_conv(x_shape, w_shape, attrs)
        weights = {t.name: numpy_helper.to_array(t) for t in conv.graph.initializer}
        x = np.random.default_rng(1).standard_normal(x_shape).astype(np.float32)
        pads = list(attrs.get("pads", [0, 0, 0, 0]))
        want = reference_conv(x, weights["w"], weights["b"], pads).astype(np.float32)
        times = {}
        for algorithm in CONV_ALGORITHMS:
            session = InferenceSession(conv.SerializeToString(), device=dev,
                                       policy={"conv_algorithm": algorithm})
            (got,) = session.run(None, {"x": x})
            if verified(got, want, False):
                times[algorithm] = plan_kernel_seconds(session.last_plan, reps + 1)
        n, m, oh, ow = want.shape
        entry = {"shape": (m, oh * ow * n, x_shape[1] * 9), "times": times}
        if times:
            best = min(times, key=times.get)
            entry.update(params={"ALGO": best},
                         gflops=2.0 * want.size * np.prod(w_shape[1:]) / times[best] * 1e-9)
        entries.append(entry)
        if progress:
            progress(entry)
    return entries


def model_shapes(path: str, device: str, precision: str) -> list:
    """The (M, N, K, kind) of every GEMM launch a model's plan makes."""
    from .runtime import InferenceSession
    session = InferenceSession(path, device=device, precision=precision)
    shapes = []
    for launch in session.last_plan.launches:
        if launch.entry != "gemm":
            continue
        M, N, K = (int(v) for v in launch.args[5:8])
        kind = "conv" if dict(launch.defines).get("A_PACKED") else "gemm"
        if (M, N, K, kind) not in shapes:
            shapes.append((M, N, K, kind))
    return shapes


DEFAULT_SHAPES = [(n, n, n, kind) for n in (256, 512, 1024) for kind in ("gemm", "conv")] + [
    (1, 1000, 768, "gemm"), (7, 3072, 768, "gemm"), (197, 768, 3072, "gemm"),
    (64, 3136, 576, "conv"), (128, 784, 1152, "conv"), (256, 196, 2304, "conv"),
    (512, 49, 4608, "conv")]


@click.command("tune")
@click.option("--device", default=None, help="Device selector (see 'clnet devices').")
@click.option("--model", "model", default=None, type=click.Path(exists=True, dir_okay=False),
              help="Tune the GEMM shapes of this ONNX model (default: common shapes).")
@click.option("--precision", type=click.Choice(["fp32", "fp16"]), default="fp32")
@click.option("--quick", is_flag=True, help="A smaller search space.")
@click.option("--reps", default=3, show_default=True, help="Timed launches per candidate.")
def tune_cmd(device, model, precision, quick, reps):
    """Search GEMM/conv kernel parameters and save them for this device."""
    from .device import select_device
    try:
        dev = select_device(device)
        shapes = model_shapes(model, device, precision) if model else DEFAULT_SHAPES
    except ClnetError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"tuning {len(shapes)} GEMM shapes on {dev.describe()}")
    click.echo(f"untuned default: {class_defaults(dev)}")
    start = time.perf_counter()
    done = []

    def report(entry):
        done.append(entry)
        M, N, K = entry["shape"]
        head = f"[{len(done)}/{len(shapes)}] {entry['kind']:4s} M={M} N={N} K={K}"
        if "params" not in entry:
            click.echo(f"{head}: no candidate verified ({entry['rejected']} rejected)")
            return
        click.echo(f"{head}: {entry['gflops']:.1f} GFLOP/s with {entry['params']} "
                   f"({entry['tried']} tried, {entry['rejected']} rejected)")

    entries = tune_gemm(dev, shapes, half=precision == "fp16",
                        space=quick_space(dev) if quick else None, reps=reps,
                        progress=report)
    path = None
    suffix = "_fp16" if precision == "fp16" else ""
    for kind in ("gemm", "conv"):
        good = [e for e in entries if e["kind"] == kind and "params" in e]
        if good:
            path = save_tuning(dev, kind + suffix, good)
    if model and precision == "fp32":
        path = _tune_algorithms(dev, model, reps) or path
    click.echo(f"done in {time.perf_counter() - start:.1f} s; saved to {path}")


def _tune_algorithms(dev, model_path: str, reps: int):
    """Time im2col against Winograd on each 3x3 stride-1 conv of the model
    (with the GEMM parameters just tuned) and save the faster of each."""
    import onnx

    from .tuning import CONV_ALGORITHM_KEY
    model = onnx.load(model_path)
    count = len(winograd_candidates(model))
    if not count:
        return None
    click.echo(f"timing {count} 3x3 conv shapes: im2col + GEMM, Winograd F(4x4) and F(2x2)")
    done = []

    def report(entry):
        done.append(entry)
        M, N, K = entry["shape"]
        times = ", ".join(f"{a} {t * 1e3:.3f} ms" for a, t in entry["times"].items())
        pick = entry.get("params", {}).get("ALGO", "none verified")
        click.echo(f"[{len(done)}/{count}] conv M={M} N={N} K={K}: {times} -> {pick}")

    entries = tune_conv_algorithms(dev, model, reps, progress=report)
    good = [e for e in entries if "params" in e]
    return save_tuning(dev, CONV_ALGORITHM_KEY, good) if good else None
