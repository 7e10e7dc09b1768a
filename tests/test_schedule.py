"""Scheduling: launch dependencies, several queues, async runs, several devices.

Several devices come from PoCL: ``POCL_DEVICES="pthread pthread pthread"``
makes one platform expose three devices, and a machine with both the system
PoCL and the PyPI PoCL has two platforms (separate contexts, different code
generation).  PoCL reads the variable when OpenCL initialises, so those
checks run in a subprocess.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

import clnet
from clnet import zoo
from clnet.schedule import (DeviceModel, assign_queues, launch_dependencies, place_stages,
                            split_batch)

from conftest import assert_close, pocl_platform, reference


def encoder_model(seq: int = 13, hidden: int = 32, heads: int = 4, layers: int = 2):
    """A transformer encoder (attention + GELU MLP, residuals) without LayerNorm."""
    b = zoo.Builder(0)
    x = "x"
    for _ in range(layers):
        x = b.node("Add", [x, zoo.attention(b, x, seq, hidden, heads)])[0]
        hidden_ffn = zoo.gelu(b, zoo.dense(b, x, hidden, 2 * hidden))
        x = b.node("Add", [x, zoo.dense(b, hidden_ffn, 2 * hidden, hidden)])[0]
    b.nodes[-1].output[0] = "y"
    inp = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, seq, hidden])
    out = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, seq, hidden])
    return b.model([inp], [out], 17, "encoder")


def branches_model(n: int = 3, width: int = 13):
    """n independent MatMul->Relu branches of one input, concatenated."""
    rng = np.random.default_rng(1)
    nodes, inits, outs = [], [], []
    for i in range(n):
        w = rng.standard_normal((width, width)).astype(np.float32)
        inits.append(onnx.numpy_helper.from_array(w, f"w{i}"))
        nodes.append(helper.make_node("MatMul", ["x", f"w{i}"], [f"m{i}"]))
        nodes.append(helper.make_node("Sigmoid", [f"m{i}"], [f"r{i}"]))
        outs.append(f"r{i}")
    nodes.append(helper.make_node("Concat", outs, ["y"], axis=1))
    graph = helper.make_graph(nodes, "branches",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [3, width])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT,
                                                             [3, n * width])], inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])


# -- pure scheduling logic --------------------------------------------------------

def test_dependencies_follow_hazards():
    accesses = [
        [(0, 100, True)],                       # 0 writes A
        [(0, 100, False), (100, 200, True)],    # 1 reads A, writes B
        [(0, 100, False), (200, 300, True)],    # 2 reads A, writes C (independent of 1)
        [(0, 100, True)],                       # 3 overwrites A: after both readers
        [(100, 200, False), (200, 300, False), (300, 400, True)],
    ]
    deps = launch_dependencies(accesses)
    assert deps == [(), (0,), (0,), (0, 1, 2), (1, 2)]


def test_queues_split_independent_chains():
    deps = [(), (0,), (), (2,), (1, 3)]
    queue_of, waits = assign_queues(deps, [1.0] * 5, 2)
    assert queue_of[0] == queue_of[1] and queue_of[2] == queue_of[3]
    assert queue_of[0] != queue_of[2]
    # the join waits only for the chain on the other queue
    other = 3 if queue_of[4] == queue_of[1] else 1
    assert waits[4] == (other,)
    assert all(not w for w in waits[:4])


@pytest.mark.parametrize("batch, speeds", [(13, [1.0, 3.0]), (3, [5.0, 1.0, 1.0]),
                                           (1, [1.0, 2.0]), (127, [2.0, 1.0, 4.0])])
def test_split_batch_follows_speed(batch, speeds):
    rows = split_batch(batch, speeds)
    assert sum(rows) == batch
    if batch >= len(speeds):
        assert min(rows) >= 1
    fastest, slowest = int(np.argmax(speeds)), int(np.argmin(speeds))
    assert rows[fastest] >= rows[slowest]


def test_placement_gives_the_fast_device_more_work():
    from clnet.frontend import load_model

    model = zoo.resnet18(size=32, classes=13)
    from clnet.passes import optimize
    graph = optimize(load_model(model))
    for value in graph.inputs:
        value.shape = (1, 3, 32, 32)
    _shape_graph(graph)
    fast = DeviceModel("fast", gflops=40.0, copy_gbps=10.0)
    slow = DeviceModel("slow", gflops=10.0, copy_gbps=10.0)
    stages = place_stages(graph, [slow, fast], stream=16)
    assert len(stages) == 2
    work = {s.device: s.predicted_s for s in stages}
    nodes = {s.device: s.last - s.first for s in stages}
    assert stages[0].first == 0 and stages[-1].last == len(graph.nodes)
    assert nodes[1] > 0 and nodes[0] > 0
    # a balanced pipeline: neither stage is more than 2x the other
    assert max(work.values()) < 2 * min(work.values())
    single = place_stages(graph, [slow, fast], stream=1)
    assert [s.device for s in single] == [1]     # one input: all on the fast device


def _shape_graph(graph) -> None:
    """Give every value its shape by lowering on the test device (no run)."""
    from clnet.device import select_device
    from clnet.plan import LowerCtx, lower_graph
    ctx = LowerCtx(select_device(os.environ.get("CLNET_DEVICE") or None), False,
                   graph.opset, {})
    lower_graph(graph, ctx)


# -- one device ---------------------------------------------------------------------

@pytest.mark.parametrize("queues", [2, 3])
def test_several_queues_match_one(device, precision, queues):
    model = branches_model()
    x = np.random.default_rng(0).standard_normal((3, 13)).astype(np.float32)
    session = clnet.InferenceSession(model.SerializeToString(), device=device,
                                     precision=precision, queues=queues)
    got = session.run(None, {"x": x})
    executor = session.last_runner.executor
    assert executor.n_queues == queues
    assert len(set(executor.queue_of)) > 1, "independent branches stayed on one queue"
    assert_close(got, reference(model, {"x": x}), precision)


def test_out_of_order_queue_matches_reference(device, precision):
    from clnet.executor import supports_out_of_order

    model = encoder_model()
    x = np.random.default_rng(4).standard_normal((1, 13, 32)).astype(np.float32)
    session = clnet.InferenceSession(model.SerializeToString(), device=device,
                                     precision=precision, out_of_order=True)
    for _ in range(2):
        got = session.run(None, {"x": x})
        assert_close(got, reference(model, {"x": x}), precision)
    assert session.last_runner.executor.out_of_order == supports_out_of_order(device)


def test_encoder_on_three_queues(device):
    model = encoder_model()
    x = np.random.default_rng(2).standard_normal((1, 13, 32)).astype(np.float32)
    one = clnet.InferenceSession(model.SerializeToString(), device=device).run(None, {"x": x})
    three = clnet.InferenceSession(model.SerializeToString(), device=device, queues=3)
    assert_close(three.run(None, {"x": x}), one, rtol=1e-6)
    assert_close(one, reference(model, {"x": x}))


def test_run_async_and_stream_keep_order(device, precision):
    model = zoo.resnet18(size=32, classes=13)
    session = clnet.InferenceSession(model.SerializeToString(), device=device,
                                     precision=precision)
    rng = np.random.default_rng(3)
    feeds = [{"input": rng.standard_normal((1, 3, 32, 32)).astype(np.float32)}
             for _ in range(5)]
    want = [session.run(None, f)[0] for f in feeds]
    handles = [session.run_async(["logits"], f) for f in feeds]
    for handle, expected in zip(handles, want):
        np.testing.assert_array_equal(handle.result()[0], expected)
    for got, expected in zip(session.stream(feeds), want):
        np.testing.assert_array_equal(got[0], expected)
    assert_close([want[0]], reference(model, feeds[0]), precision)


def test_bad_strategy_and_devices_are_reported(device):
    model = branches_model().SerializeToString()
    with pytest.raises(clnet.errors.ClnetError, match="strategy 'fast'"):
        clnet.InferenceSession(model, strategy="fast")
    with pytest.raises(clnet.errors.DeviceError, match="listed twice"):
        clnet.InferenceSession(model, devices=[device, device])


# -- several devices (subprocess: POCL_DEVICES must be set before OpenCL starts) -------

MULTI_DEVICE_SCRIPT = textwrap.dedent("""
    import json, sys
    import numpy as np
    import clnet
    from clnet import zoo
    sys.path.insert(0, {tests!r})
    from test_schedule import encoder_model
    from conftest import reference

    lists = {lists!r}
    rng = np.random.default_rng(0)
    cases = [
        ("resnet18", zoo.resnet18(batch=3, size=32, classes=13),
         {{"input": rng.standard_normal((3, 3, 32, 32)).astype(np.float32)}}),
        ("encoder", encoder_model(),
         {{"x": rng.standard_normal((1, 13, 32)).astype(np.float32)}}),
        ("bert", zoo.bert_encoder(layers=2, hidden=64, seq=13, vocab=127),
         {{"input_ids": rng.integers(0, 127, (1, 13)).astype(np.int64)}}),
    ]
    report = []
    for name, model, feeds in cases:
        data = model.SerializeToString()
        want = clnet.InferenceSession(data, device=lists[0][0]).run(None, feeds)
        oracle = reference(model, feeds)
        for devices in lists:
            for strategy in ("single", "pipeline", "data", "auto"):
                session = clnet.InferenceSession(data, devices=devices, strategy=strategy)
                got = session.run(None, feeds)
                runner = session.last_runner
                plans = runner.plans if runner is not None else [session.last_plan]
                rel = max(float(np.abs(g - w).max() / max(np.abs(w).max(), 1e-6))
                          for g, w in zip(got, want))
                ref = max(float(np.abs(g - w).max() / max(np.abs(w).max(), 1e-6))
                          for g, w in zip(got, oracle))
                report.append(dict(model=name, devices=devices, strategy=strategy,
                                   runner=getattr(runner, "strategy", "single"), rel=rel,
                                   ref=ref, rows=getattr(runner, "rows", None),
                                   used=sorted({{p.dev.index for p in plans}})))
    print("REPORT" + json.dumps(report))
""")


def _run_devices_script(script: str, pocl_devices: str, timeout: int = 600, cache=None):
    env = _devices_env(pocl_devices, cache)
    env.pop("CLNET_DEVICE", None)
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          env=env, timeout=timeout, cwd=os.path.dirname(__file__))
    lines = [line for line in proc.stdout.splitlines() if line.startswith("REPORT")]
    assert proc.returncode == 0 and lines, proc.stderr[-3000:]
    return json.loads(lines[-1][len("REPORT"):])


def _check_report(report: list, unequal: bool = False) -> None:
    """unequal: devices of different speed, where the placement's cost model
    may rightly put every pipeline stage on the faster one."""
    split = ("data",) if unequal else ("pipeline", "data")
    for row in report:
        where = f"{row['model']} on {row['devices']} ({row['strategy']})"
        assert row["rel"] <= 1e-5, f"{where}: relative error {row['rel']:.3g} vs one device"
        assert row["ref"] <= 1e-4, f"{where}: relative error {row['ref']:.3g} vs reference"
        if row["strategy"] in split and len(row["devices"]) > 1 \
                and row["model"] == "resnet18":
            assert len(row["used"]) > 1, f"{where}: only {row['used']} did any work"


@pytest.mark.slow
def test_strategies_agree_on_one_platform(device):
    p = pocl_platform()
    lists = [[f"{p}:0"], [f"{p}:0", f"{p}:1"], [f"{p}:0", f"{p}:1", f"{p}:2"]]
    script = MULTI_DEVICE_SCRIPT.format(tests=os.path.dirname(__file__), lists=lists)
    _check_report(_run_devices_script(script, "pthread pthread pthread"))


COMPILER_PROBE = textwrap.dedent("""
    import numpy as np
    import clnet
    from clnet import zoo
    x = np.random.default_rng(0).standard_normal((1, 3, 32, 32)).astype(np.float32)
    model = zoo.resnet18(batch=1, size=32, classes=13).SerializeToString()
    clnet.InferenceSession(model, device={device!r}).run(None, {{"input": x}})
""")


def _devices_env(pocl_devices: str, cache=None) -> dict:
    """The subprocess's environment; with `cache`, clnet's kernel-binary
    cache on in that folder (the users' default, which PyPI's PoCL 3.0
    needs: programs it took from its own cache abort its exit otherwise)."""
    env = dict(os.environ, POCL_DEVICES=pocl_devices)
    if cache is not None:
        env.update(CLNET_KERNEL_CACHE="1", CLNET_CACHE_DIR=str(cache))
    return env


def _skip_if_compiler_crashes(device: str, pocl_devices: str, cache=None) -> None:
    """Skip where the device's driver kills the process on clnet's kernels
    (PyPI's PoCL 3.0, LLVM 14, on an AVX-512 EPYC: an LLVM abort or a
    segmentation fault in its compiler); a clnet error still fails."""
    env = _devices_env(pocl_devices, cache)
    proc = subprocess.run([sys.executable, "-c", COMPILER_PROBE.format(device=device)],
                          capture_output=True, text=True, env=env, timeout=600)
    if proc.returncode < 0:     # killed by a signal inside the driver, not a clnet error
        llvm = [line for line in proc.stderr.splitlines() if "LLVM ERROR" in line]
        pytest.skip(f"the OpenCL driver of {device} dies (signal {-proc.returncode}) "
                    f"building or running ResNet-18's kernels" + (f": {llvm[0]}" if llvm else ""))
    assert proc.returncode == 0, proc.stderr[-3000:]


@pytest.mark.slow
def test_strategies_agree_across_two_platforms(device, tmp_path):
    from clnet.device import list_devices, probe_speed, select_device

    pocl = sorted({d.platform_index for d in list_devices()
                   if "portable computing language" in d.platform_name.lower()})
    if len(pocl) < 2:
        pytest.skip("needs two PoCL platforms (system PoCL and PyPI PoCL)")
    one, two = f"{pocl[0]}:0", f"{pocl[1]}:0"
    _skip_if_compiler_crashes(two, "pthread pthread", tmp_path)
    lists = [[one, two], [one, f"{pocl[0]}:1", two]]
    script = MULTI_DEVICE_SCRIPT.format(tests=os.path.dirname(__file__), lists=lists)
    report = _run_devices_script(script, "pthread pthread", cache=tmp_path)
    _check_report(report, unequal=True)
    # the batch of 3 is split by the two platforms' measured (cached) speeds
    speeds = [probe_speed(select_device(one)), probe_speed(select_device(two))]
    split = next(r["rows"] for r in report if r["model"] == "resnet18"
                 and r["devices"] == [one, two] and r["strategy"] == "data")
    assert split == split_batch(3, speeds)
    assert (split[0] > split[1]) == (speeds[0] > speeds[1])


def test_data_split_favours_the_faster_device(device):
    """Two devices with different measured speed split the batch unevenly."""
    script = textwrap.dedent("""
        import json
        import numpy as np
        import clnet
        from clnet import zoo
        from clnet.schedule import device_model, resolve_devices

        devices = resolve_devices("{p}:0,{p}:1")
        # the same device measured at two speeds (as two different devices would be)
        import clnet.schedule as schedule
        real = schedule.device_model
        speeds = {devices[0].index: 1.0, devices[1].index: 3.0}
        schedule.device_model = lambda d: schedule.DeviceModel(d.index, speeds[d.index], 1.0)
        model = zoo.resnet18(batch=8, size=32, classes=13).SerializeToString()
        x = np.random.default_rng(0).standard_normal((8, 3, 32, 32)).astype(np.float32)
        session = clnet.InferenceSession(model, devices=devices, strategy="data")
        got = session.run(None, {"input": x})[0]
        want = clnet.InferenceSession(model, device=devices[0]).run(None, {"input": x})[0]
        rel = float(np.abs(got - want).max() / np.abs(want).max())
        print("REPORT" + json.dumps(dict(rows=session.last_runner.rows, rel=rel)))
    """).replace("{p}", str(pocl_platform()))
    report = _run_devices_script(script, "pthread pthread")
    assert report["rows"] == [2, 6]
    assert report["rel"] <= 1e-5
