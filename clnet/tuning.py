"""Kernel parameters per device: tuned values when present, defaults when not.

`clnet tune` measures candidates per problem shape and writes one JSON file
per device into ``cache_dir()/tuning``; lookups here read it once per process.
A shape without a tuned entry takes the entry of the nearest tuned shape of
the same kind (by log-distance of M, N, K), else the device-class default.
A corrupted or foreign file is ignored with a warning.
"""
from __future__ import annotations

import json
import math
import re
import warnings
from pathlib import Path
from typing import Optional

from .cache import atomic_write, cache_dir
from .quirks import cpu_kernels, vector_width

FORMAT_VERSION = 1
# Per device class.  A CPU (PoCL) wants a wide register tile in vectors of
# the native width: 8 x 32 floats is 16 of the 32 zmm registers with AVX-512;
# with AVX2's 16 ymm registers 5 x 16 (10 accumulators, two B vectors and a
# broadcast) is the widest that does not spill (Zen 3, n=1024: 6 x 16 gave
# 121-135 GFLOP/s, 5 x 16 175-182, 4 x 16 157-180); one work-item per work-group
# keeps PoCL from looping and re-vectorising already vectorised work-items;
# tiles in groups of 16 row tiles per column panel keep A in the cache while
# B streams (SGEMM n=2048: 120 -> 270 GFLOP/s on an AVX-512 Xeon; with
# AVX2's 5-row tiles 64 of them, the column panel reused by more rows: Zen 3,
# n=2048, 175-180 -> 182-184 GFLOP/s, side by side), and two tiles per
# work-item halve PoCL's per-work-group cost (four of AVX2's smaller tiles,
# about as many outputs: SGEMM n=1024 and 2048 steadier, 160-185 -> 180-186
# GFLOP/s in six side-by-side runs, ResNet-18, MobileNetV2, BERT kernels 1-2%
# faster).
CLASS_DEFAULTS = {
    "CPU": {"TM": "regs", "TN": "2*VW", "VW": "native", "LSIZE": (1, 1, 1), "GROUP_M": "panel",
            "NT": "items"},
    "GPU": {"TM": 4, "TN": 8, "VW": 4},
    "ACCELERATOR": {"TM": 4, "TN": 8, "VW": 4},
}
KEYS = ("TM", "TN", "VW", "LSIZE", "M_FIRST", "KSPLIT", "NT", "GROUP_M", "NP")
# The tuning file's table of 3x3 stride-1 convolution algorithms, keyed by the
# conv's GEMM shape (output channels, output pixels x batch, input channels x 9).
CONV_ALGORITHM_KEY = "conv3x3"
CONV_ALGORITHMS = ("im2col", "winograd4x4", "winograd2x2", "direct")


def device_key(dev) -> str:
    """A file-name-safe identity of device + driver (tuning is per both)."""
    text = f"{dev.name}-{dev.driver}-{dev.platform_version}"
    return re.sub(r"[^A-Za-z0-9.]+", "_", text).strip("_")[:120]


def tuning_path(dev) -> Path:
    return cache_dir() / "tuning" / f"{device_key(dev)}.json"


def class_defaults(dev) -> dict:
    """GEMM parameters for an untuned device of this class."""
    params = dict(CLASS_DEFAULTS.get(dev.type, CLASS_DEFAULTS["GPU"]))
    if params.get("VW") == "native":
        params["VW"] = vector_width(dev)
    if params.get("TN") == "2*VW":
        params["TN"] = 2 * params["VW"]
    if params.get("TM") == "regs":
        params["TM"] = 8 if params["VW"] >= 16 else 5
    if params.get("GROUP_M") == "panel":
        params["GROUP_M"] = 16 if params["VW"] >= 16 else 64
    if params.get("NT") == "items":
        params["NT"] = 2 if params["VW"] >= 16 else 4
    return params


_LOADED: dict = {}


def load_tuning(dev) -> dict:
    """{kernel: [entries]} of the device's tuning file ({} without one)."""
    path = tuning_path(dev)
    key = str(path)
    if key not in _LOADED:
        _LOADED[key] = _read_tables(path)
    return _LOADED[key]


def reload() -> None:
    """Forget the tuning files read so far (the next lookup reads them anew)."""
    _LOADED.clear()


def _read_tables(path: Path) -> dict:
    if not path.is_file():
        return {}
    try:
        raw = json.loads(path.read_text())
        if not isinstance(raw, dict) or raw.get("version") != FORMAT_VERSION:
            raise ValueError(f"unknown format version "
                             f"{raw.get('version') if isinstance(raw, dict) else raw!r:.40}")
        kernels = raw.get("kernels", {})
        if not isinstance(kernels, dict):
            raise ValueError("'kernels' must be an object")
        return {k: _valid_entries(path, k, v) for k, v in kernels.items()}
    except (OSError, ValueError, TypeError, AttributeError, KeyError, RecursionError) as exc:
        # RecursionError: JSON nested thousands deep
        warnings.warn(f"ignoring the tuning file {path}: {str(exc)[:200]}; delete it or run "
                      f"'clnet tune' again", RuntimeWarning, stacklevel=3)
        return {}


# Each tunable's type and range: an entry outside them is skipped, not used
# to size a kernel (a huge KSPLIT or tile would allocate or unroll without
# bound).
PARAM_RANGES = {"TM": (1, 32), "TN": (1, 64), "KSPLIT": (1, 64), "NT": (1, 16),
                "GROUP_M": (1, 1024), "NP": (1, 8), "M_FIRST": (0, 1)}
MAX_LOCAL_SIZE = 1024


def _valid_entries(path: Path, kernel: str, entries) -> list:
    if not isinstance(entries, list):
        raise ValueError(f"entries of {kernel!r} must be a list")
    check = _checked_algorithm if kernel == CONV_ALGORITHM_KEY else _checked_params
    good = []
    for index, entry in enumerate(entries):
        try:
            if not isinstance(entry, dict):
                raise ValueError("not an object")
            shape, params = entry["shape"], entry["params"]
            if not (isinstance(shape, list) and len(shape) == 3
                    and all(isinstance(v, int) and 0 < v < 2 ** 31 for v in shape)):
                raise ValueError(f"bad shape {shape!r:.60}")
            if not isinstance(params, dict):
                raise ValueError("params must be an object")
            gflops = float(entry.get("gflops", 0.0))
            good.append({"shape": tuple(shape), "params": check(params), "gflops": gflops})
        except (ValueError, TypeError, KeyError) as exc:
            warnings.warn(f"ignoring entry {index} of {kernel!r} in the tuning file {path}: "
                          f"{str(exc)[:120]}", RuntimeWarning, stacklevel=4)
    return good


def _checked_algorithm(params: dict) -> dict:
    if params.get("ALGO") not in CONV_ALGORITHMS:
        raise ValueError(f"bad convolution algorithm {params!r:.80}")
    return {"ALGO": params["ALGO"]}


def _checked_params(params: dict) -> dict:
    params = {k: v for k, v in params.items() if k in KEYS}
    tm, tn, vw = params.get("TM"), params.get("TN"), params.get("VW")
    if not (isinstance(tm, int) and isinstance(tn, int) and vw in (4, 8, 16)
            and tn % vw == 0):
        raise ValueError(f"bad GEMM parameters {params!r:.120}")
    for key, (low, high) in PARAM_RANGES.items():
        value = params.get(key)
        if value is None:
            continue
        if isinstance(value, bool):
            value = params[key] = int(value)
        if not isinstance(value, int) or not low <= value <= high:
            raise ValueError(f"{key}={value!r:.40} outside [{low}, {high}]")
    if params.get("LSIZE") is not None:
        lsize = params["LSIZE"]
        if not (isinstance(lsize, (list, tuple)) and 1 <= len(lsize) <= 3
                and all(isinstance(v, int) and v >= 1 for v in lsize)
                and math.prod(lsize) <= MAX_LOCAL_SIZE):
            raise ValueError(f"LSIZE={lsize!r:.60} is not 1 to 3 sizes of at most "
                             f"{MAX_LOCAL_SIZE} items in all")
        params["LSIZE"] = tuple(lsize)
    return params


def save_tuning(dev, kernel: str, entries: list) -> Path:
    """Merge entries ({shape, params, gflops}) for one kernel into the file."""
    path = tuning_path(dev)
    current = _read_tables(path)
    merged = {tuple(e["shape"]): e for e in current.get(kernel, [])}
    for entry in entries:
        merged[tuple(entry["shape"])] = entry
    current = dict(current)
    current[kernel] = list(merged.values())
    doc = {"version": FORMAT_VERSION, "device": dev.describe(),
           "kernels": {k: [{"shape": list(e["shape"]), "params": _jsonable(e["params"]),
                            "gflops": round(float(e.get("gflops", 0.0)), 2)} for e in v]
                       for k, v in current.items()}}
    atomic_write(path, json.dumps(doc, indent=1))
    _LOADED.pop(str(path), None)
    return path


def _jsonable(params: dict) -> dict:
    return {k: list(v) if isinstance(v, tuple) else v for k, v in params.items()}


def _nearest(entries: list, shape: tuple) -> Optional[dict]:
    def distance(entry) -> float:
        return sum(abs(math.log(a) - math.log(b)) for a, b in zip(entry["shape"], shape))
    if not entries:
        return None
    return min(entries, key=distance)["params"]


def has_tuning(dev, kind: str) -> bool:
    """Whether gemm_params has tuned entries of this kind for the device."""
    table = load_tuning(dev)
    return bool(table.get(kind) or table.get(kind.split("_")[0]))


def gemm_params(dev, M: int, N: int, K: int, kind: str = "gemm") -> dict:
    """GEMM parameters for one problem shape on one device.

    kind: "gemm" (row-major activation A) or "conv" (packed weights A), with
    "_fp16" appended in half storage (fp32 entries serve when it has none).
    """
    table = load_tuning(dev)
    entries = table.get(kind) or table.get(kind.split("_")[0], [])
    tuned = _nearest(entries, (max(M, 1), max(N, 1), max(K, 1)))
    params = dict(tuned) if tuned else class_defaults(dev)
    params["VW"] = min(params["VW"], vector_width(dev))   # a file from another build
    if not tuned and cpu_kernels(dev) and params["TM"] == 5 and M > 5 \
            and -(-M // 5) * 5 > 1.03 * -(-M // 4) * 4:
        # 5-row tiles on a row count they leave padded by more than the 3%
        # that 4-row tiles run slower: 4 (MobileNetV2's 16-, 24-, 96- and
        # 144-channel 1x1 convs; 5 would compute up to 25% padding rows)
        params["TM"] = 4
    if M < params["TM"]:
        params["TM"] = max(1, M)
    tiles = -(-M // params["TM"]) * -(-N // params["TN"])
    if params.get("NT", 1) > 1 and tiles < 64:
        params["NT"] = 1     # too few tiles to share out
    if not tuned and cpu_kernels(dev) and M <= 2 and N >= 4 * params["TN"]:
        # matrix-vector products stream B: two panels side by side keep more
        # of it in flight (M = 2, N = 1000, K = 4608: 0.79 -> 0.68 ms)
        params["NP"] = 2
    if not tuned and not cpu_kernels(dev) and tiles < 8 * dev.compute_units and K >= 512:
        # a GPU with fewer tiles than it has cores x 8 (M = 1 rows, small
        # batches): split K so that more work-items share the work
        params["KSPLIT"] = min(8, K // 256)
    return params


def conv_algorithm(dev, shape: tuple) -> Optional[str]:
    """The algorithm `clnet tune` measured fastest for this 3x3 stride-1 conv
    shape on this device, or None where it measured none (a rule decides).
    KernelPolicy.conv_algorithm puts its override before this."""
    for entry in load_tuning(dev).get(CONV_ALGORITHM_KEY, []):
        if entry["shape"] == tuple(shape):
            return entry["params"]["ALGO"]
    return None
