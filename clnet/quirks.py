"""Device facts that change kernel code or build options, all in one place.

Each function takes a clnet ``Device`` (or an object with the same
attributes) and answers one question the lowerings, the compiler or the
tuning defaults ask.  A fact becomes a ``-D`` macro only where a kernel
reads it (``kernel_defines``).
"""
from __future__ import annotations

import os
from functools import lru_cache

# Kernel files whose results must match the ONNX reference bit for bit: the
# quantizers round x / scale to the nearest integer, ties to even, so the
# quotient must be correctly rounded (OpenCL allows 2.5 ulp by default, and
# NVIDIA's driver uses it: DynamicQuantizeLinear was one step off there).
EXACT_DIVISION = frozenset({"quant"})
EXACT_DIVISION_OPTION = "-cl-fp32-correctly-rounded-divide-sqrt"


def pin_pocl_threads() -> None:
    """Ask PoCL's CPU driver to pin worker thread i to CPU i (POCL_AFFINITY,
    read when the driver starts; a user's own setting wins).  Unpinned, the
    scheduler at times ran both workers on one CPU and GEMM speed varied
    run to run (see docs/BENCHMARKS.md, 'PoCL thread affinity').  Only where
    the process may use every CPU, since PoCL pins to CPU numbers 0..n-1."""
    if "POCL_AFFINITY" in os.environ:
        return
    try:
        allowed = os.sched_getaffinity(0)
    except (AttributeError, OSError):
        return
    if allowed == set(range(os.cpu_count() or 0)):
        os.environ["POCL_AFFINITY"] = "1"


def cpu_kernels(dev) -> bool:
    """Whether the device takes the CPU-shaped kernel variants (register
    tiles, a work-item per row) rather than the GPU-class ones."""
    return dev.type == "CPU"


def vector_width(dev) -> int:
    """The widest float vector gemm.cl should use on this device (4, 8 or 16).

    PoCL names its CPU target in the device name; float16 code for a target
    without AVX-512 crashes one PoCL's code generator, so 16 needs "avx512",
    and a PoCL whose LLVM did not know the CPU gets 4 (see pocl_knows_cpu).
    """
    width = max(4, min(16, int(getattr(dev.cl_device, "native_vector_width_float", 4) or 4)))
    if dev.type == "CPU" and not pocl_knows_cpu(dev):
        return 4
    if width == 16 and dev.type == "CPU" and "avx512" not in dev.name.lower():
        width = 8
    return width


def pocl_knows_cpu(dev) -> bool:
    """False for a PoCL CPU device named without an LLVM CPU target
    ("pthread-AMD EPYC" where a known CPU reads "pthread-znver3-AMD ..."):
    its LLVM predates the CPU, and PyPI's PoCL 3.0 (LLVM 14) then aborts
    code generation on 8- and 16-wide int/float conversions on an AVX-512
    EPYC ("Do not know how to scalarize", "Cannot select ... FILD").
    4-wide kernels compile there (docs/BENCHMARKS.md, sixth session)."""
    if "portable computing language" not in dev.platform_name.lower():
        return True
    driver, _, rest = dev.name.partition("-")
    return not rest or rest.strip() != _host_cpu_model()


@lru_cache(maxsize=1)
def _host_cpu_model() -> str:
    """The host CPU's model name as /proc/cpuinfo gives it ('' elsewhere)."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as info:
            for line in info:
                if line.startswith("model name"):
                    return line.partition(":")[2].strip()
    except OSError:
        pass
    return ""


def direct_conv_ok(dev) -> bool:
    """Whether the direct conv kernels may be chosen by default.  PyPI's
    PoCL 3.0 on a CPU its LLVM does not know (pocl_knows_cpu) aborts the
    process at exit ("still have references to IRs - can't release LLVM
    context") after running a conv_direct program: the README's digits
    example exited with SIGABRT after printing its results.  There convs
    take im2col or Winograd unless the policy forces "direct"."""
    return pocl_knows_cpu(dev)


def parallel_builds(dev) -> bool:
    """Whether programs may be built from several threads at once (the
    Oclgrind simulator's compiler crashes when they are)."""
    return "oclgrind" not in dev.platform_name.lower()


def kernel_defines(dev) -> dict:
    """The -D macros about the device that some kernel reads.

    HAS_FP16: the device has cl_khr_fp16, so -DCOMPUTE_HALF may switch
    common.h's arithmetic to half.
    """
    return {"HAS_FP16": 1} if dev.fp16 else {}


def build_options(dev, name: str) -> tuple:
    """Compiler options (beyond the base ones) kernels_cl/<name>.cl needs on dev."""
    if name in EXACT_DIVISION and dev.correctly_rounded_divide:
        return (EXACT_DIVISION_OPTION,)
    return ()
