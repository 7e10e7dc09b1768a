"""Kernel parameters per device: tuned values when present, defaults when not.

The tuner (a later `clnet tune`) writes per-device JSON; until a device has
been tuned these defaults, chosen per device class, apply.
"""
from __future__ import annotations

from functools import lru_cache

DEFAULTS = {
    # A CPU (PoCL) wants wide register tiles: one work-item computes 4 x 16.
    "CPU": {"TM": 4, "TN": 16},
    "GPU": {"TM": 4, "TN": 8},
    "ACCELERATOR": {"TM": 4, "TN": 8},
}


@lru_cache(maxsize=None)
def _device_defaults(dev_type: str) -> dict:
    return dict(DEFAULTS.get(dev_type, DEFAULTS["GPU"]))


def gemm_params(dev, M: int, N: int, K: int) -> dict:
    """GEMM tile parameters for one problem shape on one device."""
    params = dict(_device_defaults(dev.type))
    if M < params["TM"]:
        params["TM"] = 1 if M == 1 else 2
    return params
