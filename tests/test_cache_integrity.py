"""Damaged kernel cache entries are discarded and rebuilt; files clnet
writes survive a writer killed mid-write (issue 18)."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

from clnet import compile as clc
from clnet.cache import atomic_write


@pytest.fixture
def disk_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("CLNET_CACHE_DIR", str(tmp_path))
    monkeypatch.setenv("CLNET_KERNEL_CACHE", "1")
    clc.clear_memo()
    yield tmp_path / "kernels"
    clc.clear_memo()


def _cached(device, folder, name, defines):
    clc.build_program(device, name, defines)
    clc.wait_for_binary_cache()
    options = clc.program_options(device, name, defines)
    path = clc._disk_cache_path(device, name, clc.kernel_source(name), options)
    assert path.parent == folder and path.is_file()
    return path


def _truncate(path, other):
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def _garble(path, other):
    data = bytearray(path.read_bytes())
    for i in range(len(data) // 2, len(data), 97):
        data[i] ^= 0x5A
    path.write_bytes(bytes(data))


def _swap(path, other):
    path.write_bytes(other.read_bytes())     # another program's valid entry


def _raw_binary(path, other):
    path.write_bytes(path.read_bytes()[200:])   # no header: a foreign or old-format file


@pytest.mark.parametrize("damage", [_truncate, _garble, _swap, _raw_binary])
def test_damaged_entries_are_discarded_and_rebuilt(device, disk_cache, damage):
    wanted = ("index", {"T": "float", "IDX_T": "long"})
    other = ("probe", {"CACHE_SWAP_TEST": 1})
    path = _cached(device, disk_cache, *wanted)
    other_path = _cached(device, disk_cache, *other)
    damage(path, other_path)
    clc.clear_memo()
    with pytest.warns(RuntimeWarning, match="discarding the kernel cache entry"):
        prg = clc.build_program(device, *wanted)
    import pyopencl as cl

    cl.Kernel(prg, "trilu")                  # the kernel asked for is there
    clc.wait_for_binary_cache()
    options = clc.program_options(device, *wanted)
    key = clc._disk_cache_key(device, clc.kernel_source(wanted[0]), options)
    assert clc.unpack_cache_entry(path.read_bytes(), key)   # replaced by a good entry
    clc.clear_memo()
    with clc.source_builds_disabled():
        cl.Kernel(clc.build_program(device, *wanted), "trilu")


def test_entry_checks_name_the_fault():
    key, binary = b"k" * 32, b"device binary" * 10
    entry = clc.pack_cache_entry(key, binary)
    assert clc.unpack_cache_entry(entry, key) == binary
    with pytest.raises(ValueError, match="truncated"):
        clc.unpack_cache_entry(entry[:-5], key)
    with pytest.raises(ValueError, match="another program"):
        clc.unpack_cache_entry(entry, b"x" * 32)
    with pytest.raises(ValueError, match="checksum"):
        clc.unpack_cache_entry(entry[:-1] + b"?", key)
    with pytest.raises(ValueError, match="header"):
        clc.unpack_cache_entry(entry[:10], key)


_WRITER = """
import sys
from clnet.cache import atomic_write
payload = b"n" * (256 << 20)
while True:
    atomic_write(sys.argv[1], payload)
"""


def test_writer_killed_mid_write_leaves_previous_file_whole(tmp_path):
    target = tmp_path / "tuning.json"
    atomic_write(target, b"previous contents")
    child = subprocess.Popen([sys.executable, "-c", _WRITER, str(target)],
                             env=dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path)))
    try:
        deadline = time.monotonic() + 60
        while not list(tmp_path.glob(".tuning.json.*.tmp")):   # the first write is under way
            assert time.monotonic() < deadline and child.poll() is None
            time.sleep(0.002)
        child.send_signal(signal.SIGKILL)
        child.wait(30)
    finally:
        if child.poll() is None:
            child.kill()
    assert child.returncode == -signal.SIGKILL
    assert target.read_bytes() == b"previous contents"


def test_tuning_and_probe_files_are_written_atomically(device, tmp_path, monkeypatch):
    """The writers go through atomic_write: nothing else is left in the folder."""
    from clnet import tuning

    monkeypatch.setenv("CLNET_CACHE_DIR", str(tmp_path))
    tuning.reload()
    path = tuning.save_tuning(device, "gemm", [{"shape": (8, 8, 8), "params":
                                                {"TM": 4, "TN": 8, "VW": 4}, "gflops": 1.0}])
    assert [p.name for p in path.parent.iterdir()] == [path.name]
    tuning.reload()
    assert tuning.gemm_params(device, 8, 8, 8)["TN"] == 8
