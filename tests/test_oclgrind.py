"""The convolution, GEMM and recurrent kernels under Oclgrind, a strict OpenCL 1.2
simulator that reports out-of-bounds accesses, uninitialised reads and data
races that a CPU driver lets pass silently.  Skips where Oclgrind is not
installed (Debian's ``oclgrind`` package; .ci/run installs it)."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ICD = Path("/usr/lib/oclgrind/liboclgrind-rt-icd.so")
DIAGNOSTICS = ("Invalid read", "Invalid write", "Uninitialized value", "data race",
               "Work-group divergence", "Oclgrind - ")


def run_under_oclgrind(tmp_path, files: list, select: str, **env_extra) -> None:
    """Run tests `files` -k `select` on Oclgrind; fail on any diagnostic."""
    if not ICD.is_file():
        pytest.skip("Oclgrind is not installed")
    vendors = tmp_path / "vendors"
    vendors.mkdir()
    (vendors / "oclgrind.icd").write_text(f"{ICD}\n")
    env = dict(os.environ, OCL_ICD_VENDORS=str(vendors), CLNET_DEVICE="oclgrind",
               CLNET_CACHE_DIR=str(tmp_path / "cache"), **env_extra)
    tests = Path(__file__).resolve().parent
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-s", "-p", "no:cacheprovider"]
        + [str(tests / name) for name in files] + ["-k", select],
        capture_output=True, text=True, env=env, timeout=1200, cwd=tests)
    output = proc.stdout + proc.stderr
    found = [line for line in output.splitlines() if any(d in line for d in DIAGNOSTICS)]
    assert not found, "\n".join(found[:20])
    assert proc.returncode == 0, output[-3000:]
    assert " passed" in output and "skipped" not in output, output[-1000:]


@pytest.mark.slow
def test_conv_and_gemm_kernels_are_clean_under_oclgrind(tmp_path):
    run_under_oclgrind(
        tmp_path, ["test_conv.py", "test_gemm.py", "test_ops_foundation.py",
                   "test_movement.py", "test_norm.py", "test_fused.py"],
        "conv_shapes or winograd_against or winograd_row_kernels or direct_conv"
        " or matmul_const_weights or gelu or pool2d_rows or tiled_transposes"
        " or fused_activation or norm_kernels_on_any_device or large_mean or small_n_tiles"
        " or (grouped_1d and fp32-relu-direct) or trades_rows or fused_small_case"
        " or depth_space or softmax_columns")


@pytest.mark.slow
def test_recurrent_kernels_are_race_free_under_oclgrind(tmp_path):
    """rnn.cl's one-launch recurrences loop over time steps with barriers in
    the loop: with race detection on (off by default in Oclgrind), every
    variant, both directions, T=1, a ragged last work-item, GRU's two phases."""
    run_under_oclgrind(
        tmp_path, ["test_rnn.py"],
        "(sequence_variants and fp32-bidirectional) or (sequence_gru_layout and fp16-0)"
        " or (sequence_lengths_and_sizes and 1-13)", OCLGRIND_DATA_RACES="1")
