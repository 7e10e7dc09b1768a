"""KernelPolicy: the one place a lowering asks which kernel variant to run.

A policy is built per plan from the device, its tuning database and one
override (a dict of the switches below).  Lowerings call ``ctx.policy``;
tests, tools and the tuner force a variant on any device through the
override (``InferenceSession(..., policy={...})``), never by patching a
module.  Device facts that change code or options come from ``quirks``.
"""
from __future__ import annotations

import json
from typing import Mapping, Optional

from . import quirks, tuning
from .errors import ClnetError

# Switch -> what forcing it does (None or absent: the device's own choice).
VARIANTS = {
    "conv_algorithm": "every conv that can: 'im2col', 'winograd4x4', 'winograd2x2', 'direct'",
    "im2col": "True: convs take im2col + GEMM even where the input could be read in place",
    "direct_tile": "vector width (4, 8, 16) whose conv_direct tile to use",
    "winograd_rows": "True/False: Winograd row transforms (CPU kernels) on any device",
    "pool_rows": "True/False: pool2d_rows (a row per work-item) on any device",
    "norm_row_items": "True/False: rownorm_items (a work-item per row) on any device",
    "norm_wgs": "work-group size of the work-group row normalisation",
    "gemm": "dict of GEMM parameters (TM, TN, VW, ...) for every GEMM",
    "small_n_tile": "True/False: 12-row tiles for 1x1 convs on few pixels",
    "softmax_rows": "True/False: softmax_rows (a row per work-item) on any device",
    "softmax_cols": "True/False: softmax_cols (8 columns per work-item) where inner % 8 == 0",
    "reduce_items": "True/False: a work-item per output in reductions",
    "copy_reps": "vectors of a contiguous run per work-item of a raw copy",
    "dft_double": "True/False: DFT/STFT twiddles and sums in double (needs cl_khr_fp64)",
    "fuse_elementwise": "True/False: elementwise chains run as one fused kernel",
    "elementwise_width": "elements per work-item (1, 2, 4, 8, 16) of fused elementwise kernels",
    "rnn_fused_steps": "True/False: RNN/GRU/LSTM run all time steps in one launch where they fit",
    "rnn_units": "hidden units per work-item (1, 2, 4, 8, 16) of the one-launch recurrence",
}


class KernelPolicy:
    """Variant and parameter choices for one device, with an override."""

    def __init__(self, dev, override: Optional[Mapping] = None):
        override = dict(override or {})
        unknown = sorted(set(override) - set(VARIANTS))
        if unknown:
            raise ClnetError(f"unknown kernel policy switch(es) {unknown}; known: "
                             f"{', '.join(sorted(VARIANTS))}")
        algorithm = override.get("conv_algorithm")
        if algorithm is not None and algorithm not in tuning.CONV_ALGORITHMS:
            raise ClnetError(f"unknown convolution algorithm {algorithm!r}; known: "
                             f"{', '.join(tuning.CONV_ALGORITHMS)}")
        gemm = override.get("gemm")
        if gemm is not None and not (isinstance(gemm, Mapping)
                                     and all(k in gemm for k in ("TM", "TN", "VW"))):
            raise ClnetError(f"policy 'gemm' must be a dict with at least TM, TN and VW "
                             f"(and any of {', '.join(tuning.KEYS)}), got {gemm!r}")
        self.dev = dev
        self.override = override

    def forced(self, name: str, default=None):
        """The override's value of switch `name`, else `default`."""
        if name not in VARIANTS:
            raise KeyError(f"undeclared kernel policy switch {name!r}")
        value = self.override.get(name)
        return default if value is None else value

    # -- device facts ------------------------------------------------------
    @property
    def is_cpu(self) -> bool:
        return quirks.cpu_kernels(self.dev)

    @property
    def vector_width(self) -> int:
        return quirks.vector_width(self.dev)

    # -- convolution and pooling variants (clnet/ops/conv/, ops/pool.py) --------
    @property
    def wide_cpu(self) -> bool:
        """A CPU with 16-wide float vectors (AVX-512): its GEMM outruns memory,
        so kernels with smaller filters win (conv_oc, F(2x2) on big filters;
        see docs/BENCHMARKS.md, 'conv and GEMM')."""
        return self.is_cpu and self.vector_width == 16

    def winograd_rows(self, across: int) -> bool:
        """Whether Winograd's transforms take a row of `across` tiles per
        work-item (winograd_input_rows/_output_rows): on a CPU, rows of 5
        tiles and more with 16-wide vectors, of 2 and more with narrower ones
        (see docs/BENCHMARKS.md, 'conv and GEMM')."""
        if across < 2:
            return False
        return self.forced("winograd_rows",
                           self.is_cpu and across >= (5 if self.vector_width == 16 else 2))

    @property
    def pool_rows(self) -> bool:
        """Whether 2-D pooling runs a row per work-item (pool.cl pool2d_rows)."""
        return self.forced("pool_rows", self.is_cpu)

    @property
    def direct_tile_width(self) -> int:
        """The vector width whose conv_direct tile runs (GPUs take the 16 one)."""
        return self.forced("direct_tile", self.vector_width if self.is_cpu else 16)

    @property
    def direct_conv_ok(self) -> bool:
        """Whether direct conv kernels may be chosen without being forced
        (not on a PoCL that aborts at exit after running one: quirks.py)."""
        return quirks.direct_conv_ok(self.dev)

    @property
    def conv_in_place(self) -> bool:
        """Whether a 1x1 conv's GEMM may read its input in place (else im2col)."""
        return not self.forced("im2col", False)

    def small_n_tile(self, params: dict, M: int, P: int, K: int, kind: str) -> bool:
        """Whether an untuned 1x1 conv on few pixels takes 12 x 8 tiles: on a
        CPU with 8-wide vectors, where 16-column tiles would pad its P pixels
        by over 10% more than 8-column ones, K >= 256 and M >= 12 (see
        docs/BENCHMARKS.md, 'conv and GEMM')."""
        forced = self.forced("small_n_tile")
        if forced is not None:
            return forced
        return (self.is_cpu and not self.has_tuning(kind) and params.get("VW") == 8
                and params.get("TN") == 16 and K >= 256 and M >= 12
                and -(-P // 8) * 8 < 0.9 * -(-P // 16) * 16)

    # -- tuned parameters ----------------------------------------------------
    def has_tuning(self, kind: str) -> bool:
        """Whether the tuning database has entries of this GEMM kind."""
        return tuning.has_tuning(self.dev, kind)

    def gemm_params(self, M: int, N: int, K: int, kind: str = "gemm") -> dict:
        forced = self.override.get("gemm")
        if forced is None:
            return tuning.gemm_params(self.dev, M, N, K, kind)
        params = dict(forced)
        params["TM"] = min(params["TM"], max(M, 1))
        return params

    def conv_algorithm(self, shape: tuple) -> Optional[str]:
        """The forced algorithm, else the tuner's for this 3x3 stride-1 shape."""
        forced = self.override.get("conv_algorithm")
        if forced is not None:
            return forced
        return tuning.conv_algorithm(self.dev, shape)

    # -- row, reduction and copy kernels --------------------------------------
    def norm_row_items(self) -> bool:
        """norm.cl's rownorm_items (a work-item per row, no barriers), the CPU
        choice, rather than rownorm (a work-group per row)."""
        return bool(self.forced("norm_row_items", self.is_cpu))

    def norm_wgs(self) -> int:
        """Work-group size of rownorm; a CPU runs a group's items as one loop,
        so wider groups there only add barrier rounds."""
        return int(self.forced("norm_wgs", 16 if self.is_cpu else 64))

    def softmax_rows(self, inner: int) -> bool:
        """softmax_rows (a contiguous row per work-item, in vectors) on CPUs."""
        return inner == 1 and bool(self.forced("softmax_rows", self.is_cpu))

    def softmax_cols(self) -> bool:
        """softmax_cols (8 neighbouring columns per work-item, in vectors)
        for a softmax over a non-innermost axis, on CPUs (a GPU's work-items
        already read neighbouring columns together)."""
        return bool(self.forced("softmax_cols", self.is_cpu))

    def reduce_items(self, nout: int) -> bool:
        """A work-item per output even for long rows: on a CPU once `nout`
        outputs keep every core busy (see docs/BENCHMARKS.md, 'reductions')."""
        default = self.is_cpu and nout >= 4 * self.dev.compute_units
        return bool(self.forced("reduce_items", default))

    @property
    def copy_reps(self) -> int:
        """Most vectors of a contiguous run one work-item of a raw copy moves
        (a power of two; several per item amortise a CPU's per-item cost)."""
        return int(self.forced("copy_reps", 8 if self.is_cpu else 1))

    @property
    def fuse_elementwise(self) -> bool:
        """Whether FusedElementwise nodes run as one kernel (else node by node)."""
        return bool(self.forced("fuse_elementwise", True))

    @property
    def elementwise_width(self) -> int:
        """Elements per work-item of a fused elementwise kernel: the CPU's
        vector width (vector math is what makes exp and tanh cheap there),
        4 on GPUs (one float4 load per input)."""
        width = int(self.forced("elementwise_width", self.vector_width if self.is_cpu else 4))
        if width not in (1, 2, 4, 8, 16):
            raise ClnetError(f"policy elementwise_width must be 1, 2, 4, 8 or 16, got {width}")
        # never wider than a CPU compiler takes (PyPI's PoCL 3.0 crashes on
        # 16-wide float code on a CPU its LLVM does not know: quirks.py)
        return min(width, self.vector_width) if self.is_cpu else width

    def rnn_sequence_units(self, hidden: int, gates: int) -> int:
        """Hidden units per work-item of rnn.cl's one-launch recurrence
        (rnn_seq, gru_seq, lstm_seq), or 0 for the launch-per-step kernels.
        One work-group per (batch entry, direction) then runs every step, so
        it must hold H / units items and h (and GRU's r * h) in local memory.
        A CPU takes it (a launch per step cost PoCL 11-25 us, more than the
        step's work: docs/BENCHMARKS.md, 'recurrent layers') with its vector
        width of units; a GPU only for small cells (R of up to 64K elements,
        a guess: one compute unit runs the whole recurrence there)."""
        if not self.forced("rnn_fused_steps",
                           self.is_cpu or gates * hidden * hidden <= 1 << 16):
            return 0
        units = int(self.forced("rnn_units", self.vector_width if self.is_cpu else 1))
        if units not in (1, 2, 4, 8, 16):
            raise ClnetError(f"policy rnn_units must be 1, 2, 4, 8 or 16, got {units}")
        if self.is_cpu:     # wider crashed PyPI's PoCL 3.0 where it lacks the CPU (quirks)
            units = min(units, self.vector_width)
        while units > 1 and units >= 2 * hidden:
            units //= 2
        padded = -(-hidden // units) * units
        fits = padded // units <= self.dev.max_work_group_size \
            and 3 * padded * 4 <= self.dev.local_mem
        return units if fits else 0

    def dft_double(self) -> bool:
        """DFT and STFT accumulate in double wherever the device has fp64."""
        return bool(self.forced("dft_double", self.dev.fp64))


def parse_override(items) -> dict:
    """Switches from NAME=VALUE texts (the CLI's --policy): VALUE is JSON
    where it parses as JSON (true, 8, {"TM": 4, ...}), else a string."""
    override = {}
    for item in items:
        name, sep, text = item.partition("=")
        if not sep or name not in VARIANTS:
            raise ClnetError(f"--policy {item!r}: expected NAME=VALUE with NAME one of "
                             f"{', '.join(sorted(VARIANTS))}")
        try:
            override[name] = json.loads(text)
        except ValueError:
            override[name] = text
    return override
