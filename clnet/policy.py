"""KernelPolicy: the one place a lowering asks which kernel variant to run.

A policy is built per plan from the device, its tuning database and one
override (a dict of the switches below).  Lowerings call ``ctx.policy``;
tests, tools and the tuner force a variant on any device through the
override (``InferenceSession(..., policy={...})``), never by patching a
module.  Device facts that change code or options come from ``quirks``.
"""
from __future__ import annotations

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
    "reduce_items": "True/False: a work-item per output in reductions",
    "copy_reps": "vectors of a contiguous run per work-item of a raw copy",
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
