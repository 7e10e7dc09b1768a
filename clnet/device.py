"""OpenCL platforms and devices: enumeration, selection, capabilities.

Selection strings (``--device`` / ``CLNET_DEVICE``):
  ``gpu``, ``cpu``, ``accelerator`` (optionally ``gpu:1`` for the second one),
  ``P:D`` platform/device indices, or a case-insensitive substring of the
  platform name, platform version or device name.  No selection means the
  automatic choice: a GPU, else an accelerator, else the fastest CPU platform.
"""
from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Optional

import numpy as np

from . import quirks
from .cache import atomic_write, cache_dir
from .errors import DeviceError


quirks.pin_pocl_threads()   # before the OpenCL driver starts

try:
    import pyopencl as cl
except ImportError as exc:  # pragma: no cover - reported at use
    cl = None
    _IMPORT_ERROR = exc

TYPE_ORDER = ("GPU", "ACCELERATOR", "CPU", "CUSTOM")


def _require_cl() -> None:
    if cl is None:
        raise DeviceError(f"pyopencl is not importable ({_IMPORT_ERROR}); "
                          "install it with: pip install 'clnet[pocl]'")


def _type_name(cl_type: int) -> str:
    for name in ("GPU", "ACCELERATOR", "CPU", "CUSTOM"):
        if cl_type & getattr(cl.device_type, name):
            return name
    return "OTHER"


@dataclass(eq=False)
class Device:
    """One OpenCL device with its own context and in-order queue."""

    platform_index: int
    device_index: int
    cl_device: "cl.Device"
    _context: Optional["cl.Context"] = field(default=None, repr=False)
    _queue: Optional["cl.CommandQueue"] = field(default=None, repr=False)

    # -- identity -------------------------------------------------------
    @property
    def index(self) -> str:
        return f"{self.platform_index}:{self.device_index}"

    @cached_property
    def name(self) -> str:
        return self.cl_device.name.strip()

    @cached_property
    def platform_name(self) -> str:
        return self.cl_device.platform.name.strip()

    @cached_property
    def platform_version(self) -> str:
        return self.cl_device.platform.version.strip()

    @cached_property
    def driver(self) -> str:
        return self.cl_device.driver_version.strip()

    @cached_property
    def type(self) -> str:
        return _type_name(self.cl_device.type)

    def describe(self) -> str:
        return f"{self.name} [{self.platform_version}, driver {self.driver}, {self.index}]"

    # -- capabilities ---------------------------------------------------
    @cached_property
    def extensions(self) -> frozenset:
        return frozenset(self.cl_device.extensions.split())

    @property
    def fp16(self) -> bool:
        return "cl_khr_fp16" in self.extensions

    @property
    def fp64(self) -> bool:
        return "cl_khr_fp64" in self.extensions

    @cached_property
    def correctly_rounded_divide(self) -> bool:
        """Whether -cl-fp32-correctly-rounded-divide-sqrt is allowed (an optional
        capability; CPU OpenCL divides exactly anyway)."""
        flag = getattr(cl.device_fp_config, "CORRECTLY_ROUNDED_DIVIDE_SQRT", 0)
        try:
            return bool(int(self.cl_device.single_fp_config) & flag)
        except cl.Error:
            return False

    @cached_property
    def host_unified_memory(self) -> bool:
        """A CPU device whose buffers are host memory: constants can be used
        in place (CL_MEM_USE_HOST_PTR) instead of copied."""
        try:
            return self.type == "CPU" and bool(self.cl_device.host_unified_memory)
        except (cl.Error, AttributeError):
            return False

    @cached_property
    def compute_units(self) -> int:
        return int(self.cl_device.max_compute_units)

    @cached_property
    def global_mem(self) -> int:
        return int(self.cl_device.global_mem_size)

    @cached_property
    def local_mem(self) -> int:
        return int(self.cl_device.local_mem_size)

    @cached_property
    def max_alloc(self) -> int:
        return int(self.cl_device.max_mem_alloc_size)

    @cached_property
    def max_work_group_size(self) -> int:
        return int(self.cl_device.max_work_group_size)

    @cached_property
    def cache_per_core(self) -> int:
        """Bytes of the cache closest to memory that one compute unit has to
        itself: a CPU device's L2 (OpenCL reports only the last level, shared
        by all cores; a CPU device runs on the host, whose Linux sysfs tells),
        1 MB where unknown."""
        if self.type == "CPU":
            for index in sorted(Path("/sys/devices/system/cpu/cpu0/cache").glob("index*")):
                try:
                    if (index / "level").read_text().strip() != "2":
                        continue
                    text = (index / "size").read_text().strip().upper()
                    scale = {"K": 1 << 10, "M": 1 << 20}.get(text[-1:], 1)
                    return int(text.rstrip("KM")) * scale
                except (OSError, ValueError):
                    continue
        return 1 << 20

    @cached_property
    def compiler_available(self) -> bool:
        return bool(self.cl_device.compiler_available)

    @cached_property
    def base_align(self) -> int:
        """Byte alignment a sub-buffer origin must have."""
        return max(int(self.cl_device.mem_base_addr_align) // 8, 128)

    # -- runtime objects --------------------------------------------------
    @property
    def context(self) -> "cl.Context":
        if self._context is None:
            self._context = cl.Context([self.cl_device])
        return self._context

    @property
    def queue(self) -> "cl.CommandQueue":
        if self._queue is None:
            self._queue = cl.CommandQueue(self.context)
        return self._queue

    def new_queue(self, profiling: bool = False) -> "cl.CommandQueue":
        props = cl.command_queue_properties.PROFILING_ENABLE if profiling else 0
        return cl.CommandQueue(self.context, properties=props)


_DEVICES: Optional[list] = None


def list_devices() -> list:
    """Every device of every platform, in platform/device index order."""
    global _DEVICES
    _require_cl()
    if _DEVICES is None:
        devices = []
        try:
            platforms = cl.get_platforms()
        except cl.Error:  # the ICD loader reports "no platforms" as an error
            platforms = []
        for p_index, platform in enumerate(platforms):
            try:
                cl_devices = platform.get_devices()
            except cl.Error:
                continue
            for d_index, cl_device in enumerate(cl_devices):
                devices.append(Device(p_index, d_index, cl_device))
        _DEVICES = devices
    return list(_DEVICES)


def _probe_key(dev: Device) -> str:
    return f"{dev.platform_version}|{dev.name}|{dev.driver}"


def cached_measurement(filename: str, dev: Device, measure) -> float:
    """measure() once per (platform, device, driver), remembered in cache_dir()."""
    path = cache_dir() / filename
    try:
        cache = json.loads(path.read_text())
    except (OSError, ValueError):
        cache = {}
    key = _probe_key(dev)
    if isinstance(cache.get(key), (int, float)):
        return float(cache[key])
    value = float(measure())
    cache[key] = value
    try:
        atomic_write(path, json.dumps(cache, indent=1))
    except OSError:
        pass
    return value


def probe_speed(dev: Device) -> float:
    """GFLOP/s of a small register-blocked matmul kernel; cached on disk.

    Used to rank several platforms of the same type (for example two PoCL
    builds whose code generation differs several-fold).
    """
    return cached_measurement("device_speed.json", dev, lambda: _measure_matmul(dev))


def _measure_matmul(dev: Device) -> float:
    from .compile import build_program

    n = 256
    prg = build_program(dev, "probe", {})
    kernel = cl.Kernel(prg, "probe")
    rng = np.random.default_rng(0)
    a = rng.random((n, n), dtype=np.float32)
    b = rng.random((n, n), dtype=np.float32)
    mf = cl.mem_flags
    ctx, queue = dev.context, dev.queue
    a_buf = cl.Buffer(ctx, mf.READ_ONLY | mf.COPY_HOST_PTR, hostbuf=a)
    b_buf = cl.Buffer(ctx, mf.READ_ONLY | mf.COPY_HOST_PTR, hostbuf=b)
    c_buf = cl.Buffer(ctx, mf.WRITE_ONLY, size=a.nbytes)
    kernel.set_args(a_buf, b_buf, c_buf, np.int32(n))
    gsize = (n // 8, n)
    cl.enqueue_nd_range_kernel(queue, kernel, gsize, None).wait()
    times = []
    for _ in range(3):
        start = time.perf_counter()
        cl.enqueue_nd_range_kernel(queue, kernel, gsize, None).wait()
        times.append(time.perf_counter() - start)
    return 2 * n ** 3 / min(times) / 1e9


def auto_select(devices: list) -> Device:
    """A GPU, else an accelerator, else the fastest CPU (measured)."""
    if not devices:
        raise DeviceError("no OpenCL device found: install a driver, or run "
                          "pip install 'clnet[pocl]' for a CPU device")
    for kind in TYPE_ORDER:
        candidates = [d for d in devices if d.type == kind and d.compiler_available]
        if not candidates:
            continue
        if len(candidates) == 1:
            return candidates[0]
        if kind == "GPU":  # prefer the biggest GPU (discrete over integrated)
            return max(candidates, key=lambda d: (d.compute_units * 1, d.global_mem))
        best, best_speed = candidates[0], -1.0
        for dev in candidates:
            try:
                speed = probe_speed(dev)
            except Exception:  # a broken platform is simply not chosen
                speed = 0.0
            if speed > best_speed:
                best, best_speed = dev, speed
        return best
    return devices[0]


def select_device(selector: Optional[str] = None) -> Device:
    """Resolve a selection string (or CLNET_DEVICE, or auto) to a Device."""
    devices = list_devices()
    if selector is None:
        selector = os.environ.get("CLNET_DEVICE") or None
    if not devices:
        raise DeviceError("no OpenCL platform found: install an OpenCL driver, or run "
                          "pip install 'clnet[pocl]' for a CPU device")
    if selector is None or selector.strip().lower() in ("", "auto"):
        return auto_select(devices)
    sel = selector.strip()
    low = sel.lower()
    kind, _, nth = low.partition(":")
    if kind in ("gpu", "cpu", "accelerator", "custom"):
        matches = [d for d in devices if d.type == kind.upper()]
        if not matches:
            raise DeviceError(f"device {selector!r}: no {kind.upper()} device present; "
                              f"available: {_available(devices)}")
        if nth:
            if not nth.isdigit() or int(nth) >= len(matches):
                raise DeviceError(f"device {selector!r}: only {len(matches)} {kind.upper()} "
                                  f"device(s) present")
            return matches[int(nth)]
        return auto_select(matches)
    if ":" in sel and all(part.isdigit() for part in sel.split(":", 1)):
        for dev in devices:
            if dev.index == sel:
                return dev
        raise DeviceError(f"device {selector!r}: no such platform:device index; "
                          f"available: {_available(devices)}")
    matches = [d for d in devices
               if low in d.name.lower() or low in d.platform_name.lower()
               or low in d.platform_version.lower()]
    if not matches:
        raise DeviceError(f"device {selector!r} matches no device; available: "
                          f"{_available(devices)}")
    return auto_select(matches)


def _available(devices: list) -> str:
    return "; ".join(f"{d.index} {d.type} {d.name} ({d.platform_version})" for d in devices)
