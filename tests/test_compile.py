"""Kernel compilation: memoised, options as -D, prebuilt binaries first."""
from __future__ import annotations

import numpy as np
import pytest

from clnet import compile as clc
from clnet.errors import KernelBuildError


def test_memoised_per_options(device):
    a = clc.build_program(device, "probe", {})
    assert clc.build_program(device, "probe", {}) is a
    assert clc.build_program(device, "probe", {"UNUSED": 1}) is not a


def test_every_kernel_file_compiles_alone_in_both_storage_modes(device):
    names = sorted(p.stem for p in clc.kernel_dir().glob("*.cl"))
    assert "gemm" in names and "elementwise" in names
    # files whose builds hold different kernels by a define
    variants = {"conv_direct": ({}, {"OC": True}, {"PHASES_ONLY": True})}
    for name in names:
        for variant in variants.get(name, ({},)):
            for defines in (dict(variant), dict(variant, STORE_HALF=True)):
                clc.build_program(device, name, defines)


def test_prebuilt_binaries_are_used_without_compiling(device, tmp_path, monkeypatch):
    defines = {"SOME_FLAG": 7}
    clc.save_binary(device, "probe", defines, tmp_path)
    monkeypatch.setenv("CLNET_BINARIES", str(tmp_path))
    clc.clear_memo()
    with clc.source_builds_disabled():
        prg = clc.build_program(device, "probe", defines)
    import pyopencl as cl

    n = 16
    a = np.arange(n * n, dtype=np.float32).reshape(n, n) / 100
    b = np.eye(n, dtype=np.float32)
    mf = cl.mem_flags
    ctx, queue = device.context, device.queue
    bufs = [cl.Buffer(ctx, mf.READ_ONLY | mf.COPY_HOST_PTR, hostbuf=m) for m in (a, b)]
    out = cl.Buffer(ctx, mf.WRITE_ONLY, size=a.nbytes)
    kernel = cl.Kernel(prg, "probe")
    kernel.set_args(bufs[0], bufs[1], out, np.int32(n))
    cl.enqueue_nd_range_kernel(queue, kernel, (n // 8, n), None)
    result = np.empty_like(a)
    cl.enqueue_copy(queue, result, out)
    np.testing.assert_allclose(result, a @ b, rtol=1e-6)
    with clc.source_builds_disabled(), pytest.raises(KernelBuildError):
        clc.build_program(device, "probe", {"OTHER": 1})   # not prebuilt: needs the compiler


def test_binaries_are_cached_on_disk_and_damaged_ones_rebuilt(device, tmp_path, monkeypatch):
    """A second process (memo cleared) loads the device binary from the kernel
    cache without compiling; a damaged cache file is replaced by a rebuild."""
    monkeypatch.setenv("CLNET_CACHE_DIR", str(tmp_path))
    monkeypatch.setenv("CLNET_KERNEL_CACHE", "1")
    clc.clear_memo()
    defines = {"DISK_CACHE_TEST": 1}
    clc.build_program(device, "probe", defines)
    clc.wait_for_binary_cache()    # written by a background thread
    (cached,) = (tmp_path / "kernels").glob("probe-*.bin")
    clc.clear_memo()
    with clc.source_builds_disabled():
        assert clc.build_program(device, "probe", defines) is not None

    cached.write_bytes(b"not a device binary")
    clc.clear_memo()
    with pytest.warns(RuntimeWarning, match="discarding"):
        clc.build_program(device, "probe", defines)
    clc.wait_for_binary_cache()
    assert cached.read_bytes() != b"not a device binary"

    monkeypatch.setenv("CLNET_KERNEL_CACHE", "0")
    clc.clear_memo()
    clc.build_program(device, "probe", {"DISK_CACHE_TEST": 2})
    clc.wait_for_binary_cache()
    assert len(list((tmp_path / "kernels").glob("probe-*.bin"))) == 1
