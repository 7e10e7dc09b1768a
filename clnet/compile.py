"""Build OpenCL programs from ``kernels_cl/<name>.cl`` with -D options.

* ``#include "x.h"`` lines are inlined from kernels_cl/ before building, so a
  program is one self-contained string: offline compilers (FPGA flows) and
  drivers that mishandle ``-I`` with unusual paths see the same source.
* Builds are memoised per (context, name, options) in this process and the
  device binaries are kept on disk in ``cache_dir()/kernels``, keyed by the
  source, the options and the device/driver identity: a program made from
  its binary loads about ten times faster than from even the driver's own
  cached source build, which preprocesses and hashes the source again (see
  docs/BENCHMARKS.md, 'kernel binary cache').
  ``CLNET_KERNEL_CACHE=0`` turns the disk cache off.  Each entry carries
  its key, length and SHA-256 in a header checked before the driver sees
  the binary: a truncated, garbled or misnamed entry (or one that no longer
  loads) is discarded with a warning, rebuilt from source and replaced.  Asking PoCL for a binary makes
  it compile every kernel's generic work-group function, which takes
  seconds per model, so a fresh program's binary is fetched and written by
  a background thread that calls clGetProgramInfo without the GIL once no
  build is running; the session is usable meanwhile, and the process waits
  for the queue at exit (once per program and machine).
* A folder of prebuilt binaries (``CLNET_BINARIES``) is searched first, for
  devices without an online compiler.
"""
from __future__ import annotations

import hashlib
import os
import re
import struct
import threading
import time
import warnings
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from functools import lru_cache
from pathlib import Path
from typing import Iterable, Mapping

from . import quirks
from .cache import atomic_write, cache_dir
from .errors import KernelBuildError

import pyopencl as cl

BASE_OPTIONS = ("-cl-std=CL1.2", "-cl-mad-enable")
# -w: no warnings in a user's terminal.  Clang-based CPU compilers warn about
# every 16-wide vector argument on a CPU without AVX-512 (the 16-column
# register tiles use them deliberately), and PoCL prints "N warnings
# generated." itself on a model's first load.  CLNET_KERNEL_WARNINGS=1 shows
# them, for whoever writes kernels.
QUIET_OPTION = "-w"
_INCLUDE = re.compile(r'^\s*#\s*include\s+"([^"]+)"\s*$', re.MULTILINE)


def kernel_dir() -> Path:
    """kernels_cl/ of a checkout, else the copy packaged in the wheel."""
    here = Path(__file__).resolve().parent
    checkout = here.parent / "kernels_cl"
    if (checkout / "common.h").is_file():
        return checkout
    packaged = here / "kernels_cl"
    if (packaged / "common.h").is_file():
        return packaged
    try:
        from importlib import resources
        return Path(str(resources.files("clnet.kernels_cl")))
    except (ImportError, ModuleNotFoundError, TypeError) as exc:  # pragma: no cover
        raise KernelBuildError(f"cannot find the kernels_cl folder: {exc}") from exc


@lru_cache(maxsize=None)
def kernel_source(name: str) -> str:
    """Source of kernels_cl/<name>.cl with its includes inlined (once each)."""
    folder = kernel_dir()
    path = folder / f"{name}.cl"
    if not path.is_file():
        raise KernelBuildError(f"no kernel file {name}.cl in {folder}")
    seen: set = set()

    def expand(text: str) -> str:
        def repl(match: "re.Match") -> str:
            inc = match.group(1)
            if inc in seen:
                return ""
            seen.add(inc)
            return expand((folder / inc).read_text())
        return _INCLUDE.sub(repl, text)

    return expand(path.read_text())


def format_options(defines: Mapping, device_defines: Mapping) -> list:
    """Build options: the base ones, then -D for the device's defines and the
    kernel's own (which win)."""
    merged = dict(device_defines)
    merged.update(defines)
    opts = list(BASE_OPTIONS)
    if os.environ.get("CLNET_KERNEL_WARNINGS", "").strip().lower() not in ("1", "yes", "on", "true"):
        opts.append(QUIET_OPTION)
    for key in sorted(merged):
        value = merged[key]
        if value is None or value is False:
            continue
        opts.append(f"-D{key}" if value is True else f"-D{key}={value}")
    return opts


_LOCK = threading.Lock()
_MEMO: dict = {}
_SOURCE_BUILDS_OFF = 0       # > 0 inside source_builds_disabled()


def clear_memo() -> None:
    """Forget the programs built in this process: the next build_program
    loads them again (prebuilt folder, disk cache) or compiles them."""
    with _LOCK:
        _MEMO.clear()


@contextmanager
def source_builds_disabled():
    """Inside this block a program that must be compiled from source raises
    KernelBuildError instead: only prebuilt and cached binaries load (tests
    check that a binary is really used this way)."""
    global _SOURCE_BUILDS_OFF
    with _LOCK:
        _SOURCE_BUILDS_OFF += 1
    try:
        yield
    finally:
        with _LOCK:
            _SOURCE_BUILDS_OFF -= 1


def wait_for_binary_cache(timeout: float = 60.0) -> None:
    """Wait until the background thread has written every queued binary."""
    _SAVER.drain(timeout)


def program_options(dev, name: str, defines: Mapping) -> tuple:
    """Build options of kernels_cl/<name>.cl on dev: the base options, the
    device macros of clnet.quirks, then the kernel's own defines (which win)."""
    options = format_options(defines, quirks.kernel_defines(dev))
    options[len(BASE_OPTIONS):len(BASE_OPTIONS)] = quirks.build_options(dev, name)
    return tuple(options)


def build_program(dev, name: str, defines: Mapping) -> "cl.Program":
    """The built program for kernels_cl/<name>.cl with these defines."""
    options = program_options(dev, name, defines)
    key = (id(dev.context), name, options)
    with _LOCK:
        prg = _MEMO.get(key)
    if prg is not None:
        return prg
    source = kernel_source(name)
    prg = _from_binaries(dev, name, source, options)
    if prg is None:
        prg = _from_disk_cache(dev, name, source, options)
    if prg is None:
        with _SAVER.building():
            prg = _compile(dev, name, source, options)
        _store_in_disk_cache(dev, name, source, options, prg)
    with _LOCK:
        _MEMO[key] = prg
    return prg


def build_many(dev, requests: Iterable) -> list:
    """Build several (name, defines) programs, in parallel threads.

    pyopencl releases the GIL while the driver compiles, so distinct programs
    build concurrently on drivers that allow it.
    """
    requests = list(requests)
    if len(requests) <= 1 or not quirks.parallel_builds(dev):
        return [build_program(dev, n, d) for n, d in requests]
    workers = min(len(requests), max(2, os.cpu_count() or 2))
    with ThreadPoolExecutor(max_workers=workers) as pool:
        return list(pool.map(lambda req: build_program(dev, req[0], req[1]), requests))


def _compile(dev, name: str, source: str, options: tuple) -> "cl.Program":
    if _SOURCE_BUILDS_OFF:
        raise KernelBuildError(f"{name}.cl: building from source is disabled here "
                               f"(compile.source_builds_disabled) and no prebuilt or cached "
                               f"binary was found (options {' '.join(options)})")
    if not dev.compiler_available:
        raise KernelBuildError(
            f"{name}.cl: device {dev.describe()} has no online compiler and no prebuilt "
            f"binary was found; build one with 'clnet compile-kernels' and point "
            f"CLNET_BINARIES at it (options {' '.join(options)})")
    try:
        prg = cl.Program(dev.context, source).build(options=list(options), devices=[dev.cl_device])
        if prg.num_kernels == 0:
            # NOTE: PyPI's PoCL 3.0 returns programs without kernels from its
            # own kernel cache on some CPUs; a define no earlier build used
            # misses that cache (each such program compiles once per process)
            salted = list(options) + [f"-DCLNET_DRIVER_CACHE_MISS={os.getpid()}{time.time_ns()}"]
            prg = cl.Program(dev.context, source).build(options=salted, devices=[dev.cl_device])
    except cl.RuntimeError as exc:
        log = _build_log(exc)
        raise KernelBuildError(
            f"{name}.cl failed to build on {dev.describe()} with options "
            f"{' '.join(options)}:\n{log}") from None
    if prg.num_kernels == 0:
        raise KernelBuildError(f"{name}.cl built on {dev.describe()} with options "
                               f"{' '.join(options)} holds no kernel (a driver fault)")
    return prg


def _disk_cache_key(dev, source: str, options: tuple) -> bytes:
    """SHA-256 of everything the binary depends on: source, options, device, driver."""
    identity = "\0".join((dev.platform_name, dev.platform_version, dev.name, dev.driver,
                          str(dev.cl_device.version), source, " ".join(options)))
    return hashlib.sha256(identity.encode()).digest()


def _disk_cache_path(dev, name: str, source: str, options: tuple):
    if os.environ.get("CLNET_KERNEL_CACHE", "1").strip().lower() in ("0", "off", "no", "false"):
        return None
    digest = _disk_cache_key(dev, source, options).hex()[:32]
    return cache_dir() / "kernels" / f"{name}-{digest}.bin"


# A cache entry: magic, the key it was stored under, the binary's length and
# SHA-256, then the binary.  Checked before the driver sees it: PoCL may
# crash on a garbled binary, and a binary stored under another program's
# name loads but lacks the kernels asked for (INVALID_KERNEL_NAME).
_ENTRY_MAGIC = b"CLNETBIN\x01"
_ENTRY_HEADER = struct.Struct(f"<{len(_ENTRY_MAGIC)}s32sQ32s")


def pack_cache_entry(key: bytes, binary: bytes) -> bytes:
    """A kernel cache entry holding binary, stored under key."""
    return _ENTRY_HEADER.pack(_ENTRY_MAGIC, key, len(binary),
                              hashlib.sha256(binary).digest()) + binary


def unpack_cache_entry(entry: bytes, key: bytes) -> bytes:
    """The binary in a cache entry; ValueError saying why it is unusable."""
    if len(entry) < _ENTRY_HEADER.size:
        raise ValueError(f"{len(entry)} bytes, shorter than its header")
    magic, stored_key, length, checksum = _ENTRY_HEADER.unpack_from(entry)
    if magic != _ENTRY_MAGIC:
        raise ValueError("not a clnet kernel cache entry (an older format or garbled)")
    if stored_key != key:
        raise ValueError("stored for another program, options or device")
    binary = entry[_ENTRY_HEADER.size:]
    if len(binary) != length:
        raise ValueError(f"binary of {len(binary)} bytes where the header says {length} "
                         f"(truncated)")
    if hashlib.sha256(binary).digest() != checksum:
        raise ValueError("checksum mismatch (garbled)")
    return binary


def _from_disk_cache(dev, name: str, source: str, options: tuple):
    path = _disk_cache_path(dev, name, source, options)
    if path is None or not path.is_file():
        return None
    try:
        binary = unpack_cache_entry(path.read_bytes(), _disk_cache_key(dev, source, options))
        prg = cl.Program(dev.context, [dev.cl_device], [binary]).build(options=list(options))
        if prg.num_kernels == 0:
            raise ValueError("the driver loads it as a program without kernels")
        return prg
    except (OSError, ValueError, cl.Error) as exc:
        # damaged (a truncated write, a bad disk) or stale (another driver
        # build): rebuild from source; the new binary replaces this one
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else repr(exc)
        warnings.warn(f"discarding the kernel cache entry {path} of {name}.cl: {reason}; "
                      f"rebuilding it", RuntimeWarning, stacklevel=2)
        try:
            path.unlink()
        except OSError:
            pass
        return None


def _store_in_disk_cache(dev, name: str, source: str, options: tuple, prg) -> None:
    path = _disk_cache_path(dev, name, source, options)
    if path is not None:
        _SAVER.put(prg, path, _disk_cache_key(dev, source, options))


class _BinarySaver:
    """One daemon thread writing program binaries into the kernel cache."""

    def __init__(self):
        self._queue: list = []
        self._cond = threading.Condition()
        self._thread = None
        self._closing = False
        self._busy = False
        self._builds = 0
        self._last_build = 0.0
        self._draining = False
        self._lib = None

    @contextmanager
    def building(self):
        """Hold the saver off while a program compiles: PoCL compiles one
        thing at a time, and the session's own builds come first."""
        with self._cond:
            self._builds += 1
        try:
            yield
        finally:
            with self._cond:
                self._builds -= 1
                self._last_build = time.monotonic()
                self._cond.notify_all()

    def put(self, prg, path: Path, key: bytes) -> None:
        with self._cond:
            if self._closing:
                return
            self._queue.append((prg, path, key))
            if self._thread is None:
                import atexit
                atexit.register(self.close)
                self._thread = threading.Thread(target=self._work, name="clnet-binaries",
                                                daemon=True)
                self._thread.start()
            self._cond.notify()

    def drain(self, timeout: float = 60.0) -> None:
        """Wait until every queued binary is written (tests, tools, exit)."""
        with self._cond:
            self._draining = True
            self._cond.notify_all()
            self._cond.wait_for(lambda: not self._queue and not self._busy, timeout)

    def close(self) -> None:
        """At exit: finish the queue (once per program and machine; a
        driver call cut off by interpreter shutdown may crash the process),
        giving up on what is left after a minute."""
        self.drain(60.0)
        with self._cond:
            self._closing = True
            self._queue.clear()
            self._cond.notify_all()
            self._cond.wait_for(lambda: not self._busy, 10.0)

    def _ready(self) -> bool:
        if self._closing:
            return True
        if not self._queue or self._builds:
            return False
        return self._draining or time.monotonic() - self._last_build >= SAVE_IDLE_S

    def _work(self) -> None:
        while True:
            with self._cond:
                # after SAVE_IDLE_S without a build, so that the rest of a
                # session's loading is not held up (PoCL's compiler lock
                # would slow the work between its builds)
                while not self._ready():
                    self._cond.wait(SAVE_IDLE_S / 4)
                if self._closing:
                    return
                prg, path, key = self._queue.pop(0)
                self._busy = True
            try:
                binary = self._binary(prg)
                if binary:
                    atomic_write(path, pack_cache_entry(key, binary))
            except Exception:               # noqa: BLE001 - the cache is only an optimisation
                pass
            finally:
                with self._cond:
                    self._busy = False
                    self._cond.notify_all()

    def _binary(self, prg) -> bytes:
        lib = self._opencl()
        if lib is None:      # no loader found for ctypes: pyopencl's call (holds the GIL)
            (binary,) = prg.get_info(cl.program_info.BINARIES)
            return bytes(binary)
        import ctypes
        handle = ctypes.c_void_p(prg.int_ptr)
        size = (ctypes.c_size_t * 1)()
        if lib.clGetProgramInfo(handle, 0x1165, ctypes.sizeof(size), size, None) != 0 \
                or not size[0]:                 # CL_PROGRAM_BINARY_SIZES
            return b""
        data = ctypes.create_string_buffer(size[0])
        pointers = (ctypes.c_void_p * 1)(ctypes.cast(data, ctypes.c_void_p))
        if lib.clGetProgramInfo(handle, 0x1166, ctypes.sizeof(pointers), pointers, None) != 0:
            return b""                          # CL_PROGRAM_BINARIES
        return data.raw

    def _opencl(self):
        """The OpenCL loader through ctypes, which releases the GIL during
        the call (pyopencl's get_info does not).  Any ICD loader dispatches
        a program handle made by another one."""
        if self._lib is None:
            import ctypes
            import ctypes.util
            import glob
            candidates = sorted(glob.glob(str(Path(cl.__file__).parent / ".libs" / "libOpenCL*")))
            candidates += [ctypes.util.find_library("OpenCL") or "", "libOpenCL.so.1"]
            self._lib = False
            for candidate in candidates:
                if not candidate:
                    continue
                try:
                    lib = ctypes.CDLL(candidate)
                    lib.clGetProgramInfo.argtypes = [ctypes.c_void_p, ctypes.c_uint,
                                                     ctypes.c_size_t, ctypes.c_void_p,
                                                     ctypes.c_void_p]
                    lib.clGetProgramInfo.restype = ctypes.c_int
                    self._lib = lib
                    break
                except (OSError, AttributeError):
                    continue
        return self._lib or None


SAVE_IDLE_S = 1.0
_SAVER = _BinarySaver()


def _build_log(exc: Exception) -> str:
    text = str(exc)
    return text.strip() or repr(exc)


def binary_name(dev, name: str, source: str, options: tuple) -> str:
    digest = hashlib.sha256((source + "\0" + " ".join(options)).encode()).hexdigest()[:20]
    dev_tag = re.sub(r"[^A-Za-z0-9]+", "_", dev.name).strip("_")[:40]
    return f"{name}-{digest}-{dev_tag}.bin"


def _from_binaries(dev, name: str, source: str, options: tuple):
    folder = os.environ.get("CLNET_BINARIES")
    if not folder:
        return None
    path = Path(folder) / binary_name(dev, name, source, options)
    if not path.is_file():
        return None
    try:
        prg = cl.Program(dev.context, [dev.cl_device], [path.read_bytes()])
        return prg.build(options=list(options))
    except cl.Error as exc:
        raise KernelBuildError(f"prebuilt binary {path.name} for {name}.cl does not load on "
                               f"{dev.describe()}: {exc}") from None


def save_binary(dev, name: str, defines: Mapping, folder: Path) -> Path:
    """Write the device binary of one program into folder (compile-kernels)."""
    options = program_options(dev, name, defines)
    source = kernel_source(name)
    prg = build_program(dev, name, defines)
    (binary,) = prg.get_info(cl.program_info.BINARIES)
    return atomic_write(folder / binary_name(dev, name, source, options), bytes(binary))
