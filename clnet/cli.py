"""Command line: ``clnet-run MODEL`` and ``clnet devices|run``.

Errors print one line on stderr and exit non-zero; ``--debug`` shows the
traceback instead.
"""
from __future__ import annotations

import functools
import json
import sys
import time
from pathlib import Path

import click
import numpy as np

from .cache import atomic_write
from .errors import ClnetError, InputError

EXIT_ERROR = 1
EXIT_INTERNAL = 2


def _fail_cleanly(fn):
    """Turn every exception into one line on stderr unless --debug is given."""
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        debug = kwargs.get("debug", False)
        try:
            return fn(*args, **kwargs)
        except (click.exceptions.Exit, click.ClickException, click.Abort):
            raise
        except ClnetError as exc:
            if debug:
                raise
            lines = str(exc).strip().splitlines() or [type(exc).__name__]
            more = " (run with --debug for the full message)" if len(lines) > 1 else ""
            click.echo(f"clnet: error: {lines[0]}{more}", err=True)
            sys.exit(EXIT_ERROR)
        except KeyboardInterrupt:
            click.echo("clnet: interrupted", err=True)
            sys.exit(130)
        except Exception as exc:  # a bug of ours, or a driver failure
            if debug:
                raise
            msg = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
            click.echo(f"clnet: internal error: {type(exc).__name__}: {msg} "
                       f"(run with --debug for the traceback)", err=True)
            sys.exit(EXIT_INTERNAL)
    return wrapper


def _parse_shape(text: str) -> tuple:
    name, sep, dims = text.rpartition("=")
    if not sep or not dims:
        raise InputError(f"--shape {text!r}: expected NAME=1x3x224x224")
    try:
        return name, tuple(int(d) for d in dims.lower().split("x"))
    except ValueError:
        raise InputError(f"--shape {text!r}: dims must be integers like 1x3x224x224") from None


def _load_array_file(path: str) -> dict:
    """Arrays from a .npy (key None) or .npz file."""
    p = Path(path)
    if not p.is_file():
        raise InputError(f"input file {path!r} does not exist")
    try:
        if p.suffix == ".npz":
            with np.load(p, allow_pickle=False) as data:
                return {k: data[k] for k in data.files}
        return {None: np.load(p, allow_pickle=False)}
    except Exception as exc:
        raise InputError(f"cannot read {path!r} as a numpy .npy/.npz file: {exc}") from None


def build_feeds(session, inputs: tuple, shapes: tuple, seed: int) -> dict:
    """Feeds from --input files, with seeded random data for the rest."""
    model_inputs = session.get_inputs()
    names = [i.name for i in model_inputs]
    feeds: dict = {}
    for item in inputs:
        name, sep, path = item.partition("=")
        if not sep:
            name, path = None, item
        for key, arr in _load_array_file(path).items():
            target = name or key
            if target is None:
                if len(names) != 1:
                    raise InputError(f"--input {item!r}: the model has inputs {names}; "
                                     f"say which with NAME=FILE.npy")
                target = names[0]
            if target in names:
                feeds[target] = arr
            elif name is not None or len(names) != 1:
                raise InputError(f"--input {item!r}: the model has no input {target!r}; its "
                                 f"inputs are {names}")
            elif names[0] not in feeds:
                feeds[names[0]] = arr
    fixed = dict(_parse_shape(s) for s in shapes)
    rng = np.random.default_rng(seed)
    for arg in model_inputs:
        if arg.name in feeds:
            continue
        shape = fixed.get(arg.name)
        if shape is None:
            shape = tuple(d if isinstance(d, int) else 1 for d in arg.shape)
        dtype = arg.dtype or np.dtype(np.float32)
        _check_feed_size(arg.name, shape, dtype)
        if dtype.kind == "f":
            feeds[arg.name] = rng.standard_normal(shape).astype(dtype)
        elif dtype.kind == "b":
            feeds[arg.name] = rng.random(shape) < 0.5
        else:
            feeds[arg.name] = rng.integers(0, 10, size=shape).astype(dtype)
    return feeds


def _check_feed_size(name: str, shape: tuple, dtype) -> None:
    """Refuse to make a random input larger than half the host's free memory
    (a declared dim of 2^31 asked numpy for 384 GiB)."""
    from .memory import host_available_bytes

    nbytes = float(np.prod(shape, dtype=np.float64)) * max(np.dtype(dtype).itemsize, 8)
    available = host_available_bytes() or 2 ** 40
    if nbytes > available / 2:
        raise InputError(f"input {name!r} has shape {shape}: {nbytes / 2**30:.1f} GiB of random "
                         f"data, more than this host can spare ({available / 2**30:.1f} GiB "
                         f"free); give --shape {name}=... or --input {name}=FILE.npy")


def write_npz(path: str, arrays: dict) -> None:
    """np.savez into memory, then written atomically (a killed run leaves no
    half archive where an earlier one was)."""
    import io

    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    atomic_write(path if str(path).endswith(".npz") else f"{path}.npz", buffer.getvalue())


def _summary(arr: np.ndarray) -> str:
    if arr.size == 0:
        return "empty"
    if arr.dtype.kind in "fc":
        finite = np.isfinite(arr)
        note = "" if finite.all() else f", {int((~finite).sum())} non-finite"
        vals = arr[finite] if finite.any() else np.zeros(1)
        return f"min {vals.min():.4g}, max {vals.max():.4g}, mean {vals.mean():.4g}{note}"
    return f"min {arr.min()}, max {arr.max()}"


@click.command(name="run", context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("model", type=click.Path(dir_okay=False))
@click.option("--input", "-i", "inputs", multiple=True,
              help="NAME=FILE.npy, or FILE.npz whose keys are input names (repeatable).")
@click.option("--shape", "shapes", multiple=True,
              help="NAME=1x3x224x224: shape of a random input with symbolic dims.")
@click.option("--device", "-d", default=None, help="gpu, cpu, accelerator, P:D or a name "
              "substring (default: CLNET_DEVICE, else automatic).")
@click.option("--precision", type=click.Choice(["fp32", "fp16", "auto", "fp16-compute"]),
              default="fp32", show_default=True,
              help="fp16 stores tensors in half precision; auto chooses per tensor from a "
                   "calibration run; fp16-compute also computes in half (cl_khr_fp16).")
@click.option("--explain-precision", is_flag=True,
              help="Print each tensor's observed range, storage type and why (auto).")
@click.option("--int8-weights", is_flag=True,
              help="Keep Conv/Gemm/MatMul weights as int8 (per-channel scales).")
@click.option("--repeat", default=10, show_default=True, type=click.IntRange(1),
              help="Timed runs; the median latency is reported.")
@click.option("--warmup", default=1, show_default=True, type=click.IntRange(0))
@click.option("--seed", default=0, show_default=True, help="Seed of random inputs.")
@click.option("--output", "-o", "output_path", default=None, type=click.Path(dir_okay=False),
              help="Write all outputs to this .npz file.")
@click.option("--labels", default=None, type=click.Path(dir_okay=False),
              help=".npy of true class labels: print the first output's top-1 beside them.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object instead.")
@click.option("--devices", default=None,
              help="Several devices: 'all' or a comma list of selections (0:0,1:0).")
@click.option("--strategy", type=click.Choice(["auto", "single", "pipeline", "data"]),
              default="auto", show_default=True, help="How several devices share the work.")
@click.option("--queues", default=1, show_default=True, type=click.IntRange(1, 8),
              help="In-order queues per device for independent branches.")
@click.option("--out-of-order", is_flag=True,
              help="One out-of-order queue per device (where supported) instead.")
@click.option("--profile", "profile_path", default=None,
              help="Profile one more pass: a Chrome trace to this .json, or '-' for a "
                   "per-op-type table.")
@click.option("--explain", is_flag=True,
              help="Print the placement: stages, devices, predicted vs measured time.")
@click.option("--policy", "policy_items", multiple=True, metavar="NAME=VALUE",
              help="Force a kernel variant on any device, e.g. conv_algorithm=direct "
                   "(clnet.policy.VARIANTS lists them).")
@click.option("--debug", is_flag=True, help="Show tracebacks.")
@_fail_cleanly
def run_cmd(model, inputs, shapes, device, precision, explain_precision, int8_weights, repeat,
            warmup, seed, output_path, labels, as_json, devices, strategy, queues,
            profile_path, explain, out_of_order, policy_items, debug):
    """Run MODEL (an ONNX file) on an OpenCL device and report outputs and latency."""
    from .policy import parse_override
    from .runtime import InferenceSession

    start = time.perf_counter()
    # with --precision auto, calibrate on the user's own inputs when given
    calibration = (lambda sess: [build_feeds(sess, inputs, shapes, seed)]) \
        if precision == "auto" and inputs else None
    session = InferenceSession(model, device=device, precision=precision,
                               weight_int8=int8_weights, calibration=calibration,
                               devices=devices, strategy=strategy, queues=queues,
                               profile=profile_path is not None, out_of_order=out_of_order,
                               policy=parse_override(policy_items))
    load_s = time.perf_counter() - start
    feeds = build_feeds(session, inputs, shapes, seed)
    first = time.perf_counter()
    outputs = session.run(None, feeds)
    first_s = time.perf_counter() - first
    for _ in range(max(warmup - 1, 0)):
        session.run(None, feeds)
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        outputs = session.run(None, feeds)
        times.append(time.perf_counter() - t0)
    latency_ms = float(np.median(times) * 1e3)
    names = [o.name for o in session.get_outputs()]
    if output_path:
        write_npz(output_path, dict(zip(names, outputs)))
    plan = session.last_plan
    report = {
        "model": str(model),
        "device": session.device.describe(),
        "precision": precision,
        "inputs": [{"name": k, "shape": list(v.shape), "dtype": str(v.dtype)}
                   for k, v in feeds.items()],
        "outputs": [{"name": n, "shape": list(o.shape), "dtype": str(o.dtype)}
                    for n, o in zip(names, outputs)],
        "latency_ms": latency_ms,
        "latency_ms_min": float(np.min(times) * 1e3),
        "repeat": repeat,
        "load_s": load_s,
        "first_run_s": first_s,
        "device_bytes": session.device_bytes,
        "weight_bytes": plan.weight_bytes,
        "arena_bytes": plan.arena_bytes,
        "launches": len(plan.calls),
    }
    if labels:
        truth = _load_array_file(labels)[None] if not labels.endswith(".npz") else None
        if truth is None:
            raise InputError("--labels takes a .npy file of class indices")
        pred = np.asarray(outputs[0]).reshape(len(truth), -1).argmax(axis=1)
        report["top1"] = pred.tolist()
        report["accuracy"] = float((pred == truth.reshape(-1)).mean())
    if explain_precision:
        report["precision_report"] = _precision_rows(session)
    report.update(_schedule_report(session))
    profile_text = _profile(session, feeds, repeat, profile_path)
    if as_json:
        click.echo(json.dumps(report))
        return
    click.echo(f"device:    {report['device']}")
    click.echo(f"precision: {precision}   load {load_s:.2f} s   first run {first_s * 1e3:.1f} ms"
               f"   device memory {report['device_bytes'] / 2**20:.2f} MiB")
    for name, out in zip(names, outputs):
        click.echo(f"output {name!r}: shape {list(out.shape)} {out.dtype}  ({_summary(out)})")
    if labels:
        click.echo("predicted: " + " ".join(str(p) for p in report["top1"]))
        click.echo("true:      " + " ".join(str(int(t)) for t in truth.reshape(-1)))
        click.echo(f"accuracy:  {report['accuracy'] * 100:.1f}% ({len(truth)} samples)")
    click.echo(f"latency:   {latency_ms:.3f} ms median of {repeat} runs")
    click.echo(f"memory:    arena {report['arena_bytes'] / 2**20:.2f} MiB, liveness lower "
               f"bound {report['lower_bound_bytes'] / 2**20:.2f} MiB "
               f"({report['arena_bytes'] / max(report['lower_bound_bytes'], 1):.3f}x)")
    if explain:
        from .trace import explain_lines
        lines = explain_lines(session.last_runner) or [
            f"single device {session.device.index}, {report['launches']} launches on "
            f"{session.queues} queue(s)"]
        click.echo("\n".join(lines))
    if profile_text:
        click.echo(profile_text)
    if explain_precision:
        from .passes.precision import format_report
        click.echo(format_report(session.precision_report) if session.precision_report else
                   f"every float tensor is stored as "
                   f"{'fp16' if session.precision != 'fp32' else 'fp32'} ({precision})")


def _schedule_report(session) -> dict:
    """Memory and placement facts of the session's last run, for --json."""
    runner = session.last_runner
    plans = runner.plans if runner is not None else [session.last_plan]
    report = {
        "arena_bytes": session.last_plan.arena_bytes,
        "lower_bound_bytes": session.last_plan.lower_bound_bytes,
        "strategy": runner.strategy if runner is not None else "single",
        "devices": [d.index for d in session.devices],
        "plans": [{"device": p.dev.index, "arena_bytes": p.arena_bytes,
                   "lower_bound_bytes": p.lower_bound_bytes, "launches": len(p.calls)}
                  for p in plans],
    }
    if runner is not None and runner.strategy == "data":
        report["batch_split"] = list(runner.rows)
    if runner is not None and runner.strategy == "pipeline":
        report["stages"] = [{"stage": st.index, "nodes": [st.first, st.last],
                             "device": p.dev.index, "predicted_ms": st.predicted_s * 1e3,
                             "measured_ms": None if st.measured_s is None
                             else st.measured_s * 1e3}
                            for st, p in zip(runner.stages, runner.plans)]
    return report


def _profile(session, feeds: dict, repeat: int, path) -> str:
    """One more profiled pass (a stream of inputs for a pipeline); writes the
    trace, or returns the per-op table for '-'."""
    if path is None:
        return ""
    from .trace import format_op_table, write_chrome_trace
    runner = session.last_runner
    runs = 1
    if runner is not None and runner.strategy == "pipeline":
        runs = max(repeat, 2)
        for _ in session.stream([feeds] * runs):
            pass
    else:
        session.run(None, feeds)
    records = session.last_records
    if path == "-":
        return format_op_table(records, runs)
    write_chrome_trace(records, path)
    return f"trace:     {path} ({len(records)} events; open in ui.perfetto.dev)"


def _precision_rows(session) -> list:
    return [{"tensor": r.name, "max_abs": r.max_abs, "storage": "fp16" if r.half else "fp32",
             "why": r.why} for r in session.precision_report]


@click.command(name="devices")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
@click.option("--debug", is_flag=True, help="Show tracebacks.")
@_fail_cleanly
def devices_cmd(as_json, debug):
    """List every OpenCL platform and device, and the automatic choice."""
    from .device import auto_select, list_devices

    devices = list_devices()
    if not devices:
        click.echo("no OpenCL platform found; pip install 'clnet[pocl]' gives a CPU device")
        sys.exit(EXIT_ERROR)
    chosen = auto_select(devices)
    rows = []
    for d in devices:
        rows.append({
            "index": d.index, "platform": d.platform_version, "device": d.name, "type": d.type,
            "compute_units": d.compute_units, "global_mem_mib": d.global_mem >> 20,
            "local_mem_kib": d.local_mem >> 10, "max_alloc_mib": d.max_alloc >> 20,
            "fp16": d.fp16, "fp64": d.fp64, "compiler": d.compiler_available,
            "driver": d.driver, "auto": d is chosen,
        })
    if as_json:
        click.echo(json.dumps(rows, indent=1))
        return
    header = ["", "index", "type", "CUs", "global MiB", "local KiB", "max alloc MiB", "fp16",
              "fp64", "compiler", "driver", "device", "platform"]
    table = [header]
    for r in rows:
        table.append(["*" if r["auto"] else "", r["index"], r["type"], r["compute_units"],
                      r["global_mem_mib"], r["local_mem_kib"], r["max_alloc_mib"],
                      "yes" if r["fp16"] else "no", "yes" if r["fp64"] else "no",
                      "yes" if r["compiler"] else "no", r["driver"], r["device"], r["platform"]])
    widths = [max(len(str(row[i])) for row in table) for i in range(len(header))]
    for row in table:
        click.echo("  ".join(str(c).ljust(w) for c, w in zip(row, widths)).rstrip())
    click.echo(f"* automatic choice: {chosen.index} {chosen.name} ({chosen.platform_version})")


@click.command(name="compile-kernels")
@click.argument("model", type=click.Path(dir_okay=False))
@click.option("--device", "-d", default=None, help="Device selection (as for run).")
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False),
              help="Folder for the binaries, sources and manifest.json.")
@click.option("--shape", "shapes", multiple=True, help="NAME=1x3x224x224 for symbolic dims.")
@click.option("--precision", type=click.Choice(["fp32", "fp16"]), default="fp32")
@click.option("--debug", is_flag=True, help="Show tracebacks.")
@_fail_cleanly
def compile_kernels_cmd(model, device, out_dir, shapes, precision, debug):
    """Write every (kernel, options) MODEL needs: device binaries (for
    CLNET_BINARIES) plus the sources and options, for offline compilers."""
    from .compile import kernel_source, program_options, save_binary
    from .runtime import InferenceSession

    session = InferenceSession(model, device=device, precision=precision)
    session.run(None, build_feeds(session, (), shapes, 0))
    folder = Path(out_dir)
    dev = session.device
    manifest = []
    for program, defines in sorted({(l.program, l.defines) for l in session.last_plan.launches}):
        path = save_binary(dev, program, dict(defines), folder)
        source = folder / f"{path.stem}.cl"
        atomic_write(source, kernel_source(program))
        manifest.append({"kernel": program, "binary": path.name, "source": source.name,
                         "options": list(program_options(dev, program, dict(defines)))})
    atomic_write(folder / "manifest.json", json.dumps({"device": dev.describe(),
                                                       "programs": manifest}, indent=1))
    click.echo(f"wrote {len(manifest)} programs for {dev.name} to {folder}")


@click.command(name="optimize")
@click.argument("src", type=click.Path(dir_okay=False))
@click.argument("dst", type=click.Path(dir_okay=False))
@click.option("--fp16", is_flag=True, help="Store weights and compute in float16.")
@click.option("--keep-fp32", "keep_fp32", multiple=True,
              help="With --fp16: a graph input/output to keep float32 (repeatable; "
                   "default: all of them).")
@click.option("--int8", "int8", is_flag=True,
              help="int8 weights (per output channel) behind DequantizeLinear.")
@click.option("--calibration", default=None, type=click.Path(dir_okay=False),
              help=".npz of inputs: report the optimised model's error on them.")
@click.option("--prune", default=0.0, type=click.FloatRange(0.0, 0.99),
              help="Zero this fraction of each weight by magnitude.")
@click.option("--structured", is_flag=True, help="With --prune: zero whole output channels.")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@click.option("--debug", is_flag=True, help="Show tracebacks.")
@_fail_cleanly
def optimize_cmd(src, dst, fp16, keep_fp32, int8, calibration, prune, structured, as_json,
                 debug):
    """Optimise the ONNX model SRC and write it to DST (runs anywhere ONNX runs)."""
    from .optimize import OptimizeOptions, format_optimize_report, optimize_file

    feeds = _load_array_file(calibration) if calibration else None
    options = OptimizeOptions(fp16=fp16, keep_fp32=tuple(keep_fp32) or None, int8=int8,
                              prune=prune, structured=structured)
    report = optimize_file(src, dst, options, feeds)
    click.echo(json.dumps(report) if as_json else format_optimize_report(report))


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="clnet")
def main():
    """clnet: run ONNX models on any OpenCL device."""


main.add_command(run_cmd)
main.add_command(devices_cmd)
main.add_command(compile_kernels_cmd)
main.add_command(optimize_cmd)
from .tune_cli import tune_cmd  # noqa: E402  (a module of its own)
main.add_command(tune_cmd)


def run_main():
    """Entry point of the clnet-run console script."""
    run_cmd(prog_name="clnet-run")


if __name__ == "__main__":
    main()
