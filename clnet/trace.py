"""Profiles of runs: Chrome traces (Perfetto) and per-op-type tables.

The input is a list of ``clnet.executor.Record``: one OpenCL command each,
with the event that OpenCL profiling timed.  Every device queue becomes one
track (a thread of the device's process in the trace); host<->device copies
get a track of their own per device.
"""
from __future__ import annotations

import json
from collections import defaultdict
from typing import Optional

from .cache import atomic_write


def timed(records: list) -> list:
    """(record, start_ns, end_ns) for every record whose event has times."""
    rows = []
    for record in records:
        try:
            start, end = record.times_ns()
        except Exception:  # an event without profiling info (queue not profiled)
            continue
        rows.append((record, start, max(end, start)))
    return rows


def chrome_trace(records: list) -> dict:
    """The Chrome trace-event JSON object of profiled records."""
    rows = timed(records)
    origin = min((start for _, start, _ in rows), default=0)
    pids: dict = {}
    tids: dict = {}
    events = []
    for record, start, end in rows:
        device, _, lane = record.track.partition(" ")
        pid = pids.setdefault(device, len(pids) + 1)
        tid = tids.setdefault(record.track, len(tids) + 1)
        events.append({
            "name": record.name if record.kind == "kernel" else f"{record.kind} {record.name}",
            "cat": record.kind if record.kind != "kernel" else record.op,
            "ph": "X", "ts": (start - origin) / 1e3, "dur": (end - start) / 1e3,
            "pid": pid, "tid": tid,
            "args": {"op": record.op, "flops": record.flops},
        })
    meta = []
    for device, pid in pids.items():
        meta.append({"name": "process_name", "ph": "M", "pid": pid,
                     "args": {"name": f"device {device}"}})
    for track, tid in tids.items():
        device, _, lane = track.partition(" ")
        meta.append({"name": "thread_name", "ph": "M", "pid": pids[device], "tid": tid,
                     "args": {"name": lane or "queue"}})
    return {"traceEvents": meta + events, "displayTimeUnit": "ms"}


def write_chrome_trace(records: list, path: str) -> str:
    """Write the trace of records to path (open it in ui.perfetto.dev)."""
    atomic_write(path, json.dumps(chrome_trace(records)))
    return path


def op_table(records: list) -> list:
    """Rows (op type, launches, total ms, share, GFLOP/s), slowest first.

    Copies appear as the op types "upload" and "download".
    """
    total_ns: dict = defaultdict(int)
    count: dict = defaultdict(int)
    flops: dict = defaultdict(float)
    for record, start, end in timed(records):
        total_ns[record.op] += end - start
        count[record.op] += 1
        flops[record.op] += record.flops
    grand = sum(total_ns.values()) or 1
    rows = []
    for op, ns in sorted(total_ns.items(), key=lambda item: -item[1]):
        gflops = flops[op] / ns if ns and flops[op] else None   # flop/ns == GFLOP/s
        rows.append((op, count[op], ns / 1e6, ns / grand, gflops))
    return rows


def format_op_table(records: list, runs: int = 1) -> str:
    """The per-op-type table as text (times per run when runs > 1)."""
    rows = op_table(records)
    lines = [f"{'op':<24}{'launches':>9}{'ms':>10}{'share':>8}{'GFLOP/s':>10}"]
    for op, launches, ms, share, gflops in rows:
        rate = f"{gflops:10.2f}" if gflops is not None else f"{'-':>10}"
        lines.append(f"{op:<24}{launches // runs:>9}{ms / runs:>10.3f}{share * 100:>7.1f}%"
                     f"{rate}")
    total = sum(r[2] for r in rows) / runs
    lines.append(f"{'total':<24}{'':>9}{total:>10.3f}{'100.0%':>8}")
    return "\n".join(lines)


def overlap_ns(records: list, track_a: str, track_b: str) -> int:
    """Nanoseconds during which commands of two tracks ran at the same time."""
    rows = timed(records)
    a = sorted((s, e) for r, s, e in rows if r.track.startswith(track_a))
    b = sorted((s, e) for r, s, e in rows if r.track.startswith(track_b))
    total = 0
    for start, end in a:
        for other_start, other_end in b:
            if other_start >= end:
                break
            total += max(0, min(end, other_end) - max(start, other_start))
    return total


def explain_lines(runner) -> Optional[list]:
    """Lines describing a multi-device runner's placement, or None."""
    if getattr(runner, "strategy", None) == "pipeline":
        lines = [f"{'stage':<6}{'nodes':<12}{'device':<8}{'in':>10}{'predicted ms':>14}"
                 f"{'measured ms':>13}"]
        for stage, plan in zip(runner.stages, runner.plans):
            measured = f"{stage.measured_s * 1e3:13.3f}" if stage.measured_s is not None \
                else f"{'-':>13}"
            nbytes = sum(v.size * 4 for v in stage.inputs)
            lines.append(f"{stage.index:<6}{f'{stage.first}-{stage.last - 1}':<12}"
                         f"{plan.dev.index:<8}{nbytes / 1024:>8.1f}KB"
                         f"{stage.predicted_s * 1e3:>14.3f}{measured}")
        return lines
    if getattr(runner, "strategy", None) == "data":
        parts = ", ".join(f"{plan.dev.index}: {rows} rows"
                          for plan, rows in zip(runner.plans, runner.rows))
        return [f"data parallel batch split by measured speed: {parts}"]
    return None
