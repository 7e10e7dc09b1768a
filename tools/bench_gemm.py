"""GEMM speed: clnet's gemm.cl against numpy (OpenBLAS) in the same process.

C[M,N] = A[M,K] @ B[K,N] with B a constant (weights, packed at load as the
runtime does) and A row-major (an activation).  Each size is checked against
numpy, then timed: median of kernel-only event times for clnet, median
wall time for numpy; the ratio is clnet GFLOP/s / numpy GFLOP/s.

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python tools/bench_gemm.py
    python tools/bench_gemm.py --half --sizes 1024 --shapes ""
    python tools/bench_gemm.py --csv out.csv   # for tools/plot_gemm.py
"""
from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import pyopencl as cl

from clnet.compile import build_program
from clnet.device import select_device
from clnet.ops.gemm import (HALF_A_CONVERT_MIN, HALF_B_CONVERT_ROWS, epilogue_args,
                            gemm_launch_config, pack_a, pack_b)
from clnet.policy import KernelPolicy

SQUARE = (256, 512, 1024, 2048, 4096)
PAUSE_S = 0.3   # between blocks: longer than OpenBLAS's idle-thread spin
MODEL_SHAPES = ((1, 1000, 768), (7, 1000, 768), (197, 1000, 768), (1, 3072, 768),
                (7, 3072, 768), (197, 3072, 768), (1, 1000, 4608), (7, 1000, 4608),
                (197, 1000, 4608), (197, 768, 3072))


def blas_name() -> str:
    try:
        from threadpoolctl import threadpool_info
        info = [i for i in threadpool_info() if i.get("user_api") == "blas"]
        return ", ".join(f"{i['internal_api']} {i.get('version')} {i.get('architecture')} "
                         f"{i['num_threads']} threads" for i in info) or "unknown"
    except ImportError:
        return "unknown (threadpoolctl not installed)"


class ClGemm:
    """One GEMM problem on the device, set up as the runtime would."""

    def __init__(self, dev, queue, a, b, half: bool, params=None, a_packed=False):
        self.M, self.K = a.shape
        self.N = b.shape[1]
        p = dict(params or KernelPolicy(dev).gemm_params(self.M, self.N, self.K))
        sdt = np.float16 if half else np.float32
        mf = cl.mem_flags
        ctx = dev.context
        tn = p["TN"]
        a_host = pack_a(a[None], p["TM"])[0] if a_packed else a
        self.a = cl.Buffer(ctx, mf.READ_ONLY | mf.COPY_HOST_PTR, hostbuf=a_host.astype(sdt))
        self.b = cl.Buffer(ctx, mf.READ_ONLY | mf.COPY_HOST_PTR,
                           hostbuf=pack_b(b, tn).astype(sdt))
        self.c = cl.Buffer(ctx, mf.READ_WRITE, size=self.M * self.N * np.dtype(sdt).itemsize)
        self.sdt, self.queue = sdt, queue
        defines, gsize, lsize = gemm_launch_config(p, self.M, self.N, 1, a_packed=a_packed)
        self.launches = []
        a_arg, b_arg = self.a, self.b
        big = half and self.M * self.N * self.K >= HALF_A_CONVERT_MIN
        if half:
            defines["STORE_HALF"] = True
        # as the runtime does: a large GEMM's A, and B where enough rows use
        # it, converted to float once before it (-DA_FLOAT, -DB_FLOAT)
        if big and not a_packed:
            a_arg = self._to_float(dev, self.a, self.M * self.K)
            defines["A_FLOAT"] = True
        if big and self.M >= HALF_B_CONVERT_ROWS:
            b_arg = self._to_float(dev, self.b, -(-self.N // tn) * tn * self.K)
            defines["B_FLOAT"] = True
        self.kernel = cl.Kernel(build_program(dev, "gemm", defines), "gemm")
        z = np.array([1, 1, 0, 0], np.int32)
        self.kernel.set_args(a_arg, b_arg, self.c, None, None, np.int32(self.M),
                             np.int32(self.N), np.int32(self.K), np.int32(self.K), z, z,
                             np.array([self.M * self.N, 0, self.N, 0], np.int32),
                             np.int32(0), np.int32(0), *epilogue_args())
        self.launches.append((self.kernel, gsize, lsize))

    def _to_float(self, dev, half_buf, count: int):
        """A float copy of a half buffer, made by a launch before the GEMM."""
        out = cl.Buffer(dev.context, cl.mem_flags.READ_WRITE, size=count * 4)
        convert = cl.Kernel(build_program(dev, "quant", {"IN_HALF": True, "STORE_HALF": True}),
                            "convert_storage")
        convert.set_args(half_buf, out, np.int32(count))
        self.launches.append((convert, (count,), None))
        self._keep = getattr(self, "_keep", []) + [out]
        return out

    def run(self) -> float:
        """One GEMM (with its A conversion, if any); seconds of kernel time."""
        events = [cl.enqueue_nd_range_kernel(self.queue, k, g, l) for k, g, l in self.launches]
        events[-1].wait()
        return sum(ev.profile.end - ev.profile.start for ev in events) * 1e-9

    def result(self) -> np.ndarray:
        out = np.empty((self.M, self.N), self.sdt)
        cl.enqueue_copy(self.queue, out, self.c)
        return out.astype(np.float32)


def time_numpy(a, b, reps: int) -> float:
    times = []
    for _ in range(reps):
        t = time.perf_counter()
        np.matmul(a, b)
        times.append(time.perf_counter() - t)
    return statistics.median(times)


BLOCKS = 5      # alternating clnet / numpy blocks per shape


def reps_for(flops: float) -> int:
    """Runs per side: about a second's worth at 160 GFLOP/s, 20 to 100
    (n=2048: 20 runs, 2 s).

    (19 runs of n=1024 over 0.2 s had let one burst of the machine's noise
    move the median ratio from 0.98 to 0.94.)"""
    return int(min(100, max(20, 1.6e11 / max(flops, 1.0))))


def bench_shape(dev, queue, M, N, K, half, rng, params=None) -> dict:
    a = rng.standard_normal((M, K), dtype=np.float32)
    b = rng.standard_normal((K, N), dtype=np.float32)
    if half:
        a, b = a.astype(np.float16).astype(np.float32), b.astype(np.float16).astype(np.float32)
    g = ClGemm(dev, queue, a, b, half, params)
    g.run()
    want = a @ b
    err = np.abs(g.result() - want).max() / (np.abs(want).max() + 1e-6)
    tol = 5e-3 if half else 1e-4
    if not err < tol:
        raise SystemExit(f"WRONG result at M={M} N={N} K={K}: rel err {err:.2e}")
    flops = 2.0 * M * N * K
    reps = reps_for(flops)
    cl_times, np_times = [], []
    np.matmul(a, b)
    # Alternating blocks, so that both see the same machine load.  OpenBLAS's
    # idle threads keep spinning for ~0.1 s after a call, and took the cores
    # from OpenCL launches started in that time (SGEMM n=512 ran at 90-145
    # GFLOP/s instead of 220), so each block starts after a pause and one
    # untimed run.
    block = max(2, reps // BLOCKS)
    for _ in range(BLOCKS):
        time.sleep(PAUSE_S)
        g.run()
        cl_times += [g.run() for _ in range(block)]
        time.sleep(PAUSE_S)
        np.matmul(a, b)
        np_times += [time_numpy(a, b, 1) for _ in range(block)]
    t_cl, t_np = statistics.median(cl_times), statistics.median(np_times)
    return {"M": M, "N": N, "K": K, "cl_ms": t_cl * 1e3, "np_ms": t_np * 1e3,
            "cl_gflops": flops / t_cl * 1e-9, "np_gflops": flops / t_np * 1e-9,
            "ratio": t_np / t_cl}


def parse_shapes(text: str) -> list:
    if not text:
        return []
    return [tuple(int(v) for v in item.split("x")) for item in text.split(",")]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default=None)
    ap.add_argument("--half", action="store_true", help="fp16 storage")
    ap.add_argument("--sizes", default=",".join(map(str, SQUARE)))
    ap.add_argument("--shapes", default=",".join("x".join(map(str, s)) for s in MODEL_SHAPES),
                    help="MxNxK,... model shapes")
    ap.add_argument("--csv", default=None, help="also write the rows to this CSV file")
    args = ap.parse_args()
    dev = select_device(args.device)
    queue = dev.new_queue(profiling=True)
    rng = np.random.default_rng(0)
    print(f"device: {dev.describe()}")
    print(f"numpy BLAS: {blas_name()}")
    print(f"storage: {'fp16' if args.half else 'fp32'}   date: "
          f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}")
    shapes = [(n, n, n) for n in parse_shapes(args.sizes) for n in n] \
        + parse_shapes(args.shapes)
    print(f"{'M':>5} {'N':>5} {'K':>5} {'clnet ms':>9} {'numpy ms':>9} {'clnet GF/s':>10} "
          f"{'numpy GF/s':>10} {'ratio':>6}")
    rows = []
    for M, N, K in shapes:
        r = bench_shape(dev, queue, M, N, K, args.half, rng)
        rows.append(r)
        print(f"{M:>5} {N:>5} {K:>5} {r['cl_ms']:>9.3f} {r['np_ms']:>9.3f} "
              f"{r['cl_gflops']:>10.1f} {r['np_gflops']:>10.1f} {r['ratio']:>6.2f}", flush=True)
    if args.csv:
        with open(args.csv, "w") as f:
            f.write("M,N,K,cl_gflops,np_gflops,ratio\n")
            for r in rows:
                f.write(f"{r['M']},{r['N']},{r['K']},{r['cl_gflops']:.2f},"
                        f"{r['np_gflops']:.2f},{r['ratio']:.3f}\n")


if __name__ == "__main__":
    main()
