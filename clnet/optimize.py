"""``clnet optimize``: rewrite an ONNX model so that it is smaller and cheaper
anywhere it runs (onnxruntime included), and report what changed.

Passes, in order: constant folding (with static Shape nodes), BatchNorm
folding into Conv/Gemm, bias fusion (Conv + Add -> Conv with bias, 2-D
MatMul + Add -> Gemm), dead-code removal; then, as asked, magnitude pruning
(per weight, or whole output channels), int8 weights (per output channel,
behind DequantizeLinear) and float16 conversion with chosen inputs/outputs
kept float32 through Cast nodes (clnet.onnx_rewrite, clnet.onnx_compress).
The report gives file size, op count and estimated FLOPs before and after.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import numpy as np
import onnx
from onnx import numpy_helper

from .cache import atomic_write
from .errors import ClnetError, ModelError
from .frontend.onnx import load_external_data, read_model
from .onnx_compress import prune, quantize_weights, to_fp16
from .onnx_rewrite import ProtoGraph, fold_batchnorm, fold_constants, fuse_bias, \
    inferred_shapes, remove_dead


@dataclass
class OptimizeOptions:
    """What ``clnet optimize`` does beyond the lossless passes."""
    fp16: bool = False
    keep_fp32: Optional[tuple] = None     # input/output names kept fp32; None: all
    int8: bool = False
    prune: float = 0.0
    structured: bool = False


def estimate_flops(model: "onnx.ModelProto") -> int:
    """Multiply-adds count twice; every other op one per output element."""
    shapes = inferred_shapes(model)
    total = 0
    for node in model.graph.node:
        out = shapes.get(node.output[0]) if node.output else None
        size = int(np.prod(out)) if out is not None else 0
        if node.op_type in ("Conv", "ConvInteger", "QLinearConv"):
            w = shapes.get(node.input[3 if node.op_type == "QLinearConv" else 1])
            total += 2 * size * int(np.prod(w[1:])) if w else size
        elif node.op_type in ("MatMul", "Gemm", "MatMulInteger", "QLinearMatMul"):
            a = shapes.get(node.input[0])
            trans = any(at.name == "transA" and at.i for at in node.attribute)
            k = (a[0] if trans else a[-1]) if a else 1
            total += 2 * size * int(k)
        else:
            total += size
    return int(total)


def summarize(model: "onnx.ModelProto") -> dict:
    ops: dict = {}
    for node in model.graph.node:
        ops[node.op_type] = ops.get(node.op_type, 0) + 1
    weights = [numpy_helper.to_array(t) for t in model.graph.initializer]
    count = sum(w.size for w in weights if w.dtype.kind == "f" or w.dtype.kind in "iu")
    zeros = sum(int(np.count_nonzero(w == 0)) for w in weights if w.dtype.kind in "fiu")
    return {"bytes": model.ByteSize(), "ops": len(model.graph.node), "op_types": ops,
            "flops": estimate_flops(model), "weight_sparsity": zeros / count if count else 0.0}


def optimize_model(model: "onnx.ModelProto", options: OptimizeOptions) -> tuple:
    """(optimised ModelProto, dict of what each pass did)."""
    work = onnx.ModelProto()
    work.CopyFrom(model)
    m = ProtoGraph(work)
    done = {"folded": fold_constants(m)}
    m.commit()
    done["batchnorm_folded"] = fold_batchnorm(m)
    m.commit()
    done["bias_fused"] = fuse_bias(m)
    done["dead_removed"] = remove_dead(m)
    if options.prune:
        done["pruned_weights"] = prune(m, options.prune, options.structured)
    if options.int8:
        done["int8_weights"] = quantize_weights(m)
    if options.fp16:
        done["fp16_tensors"] = to_fp16(m, options.keep_fp32)
    result = m.commit()
    del result.graph.value_info[:]
    try:
        result = onnx.shape_inference.infer_shapes(result)
        onnx.checker.check_model(result)
    except Exception as exc:
        raise ModelError(f"the optimised model fails ONNX validation: {exc}") from None
    return result, done


def optimize_file(src: str, dst: str, options: OptimizeOptions,
                  calibration: Optional[dict] = None) -> dict:
    """Optimise the model at src, write it to dst; returns the report."""
    proto, base, _ = read_model(src)
    load_external_data(proto, base)
    before = summarize(proto)
    result, done = optimize_model(proto, options)
    try:
        atomic_write(dst, result.SerializeToString())
    except (OSError, ValueError) as exc:
        raise ClnetError(f"cannot write {dst!r}: {exc}") from None
    report = {"source": str(src), "written": str(dst), "before": before,
              "after": summarize(result), "passes": done}
    if calibration:
        report["check"] = compare_outputs(proto, result, calibration)
    return report


def compare_outputs(original, optimised, feeds: dict) -> dict:
    """Max relative output error (and top-1 agreement) on the given feeds."""
    import onnxruntime as ort

    def run(model):
        session = ort.InferenceSession(model.SerializeToString(),
                                       providers=["CPUExecutionProvider"])
        names = {i.name: i for i in session.get_inputs()}
        cast = {k: (v.astype(np.float16) if names[k].type == "tensor(float16)" else v)
                for k, v in feeds.items() if k in names}
        return session.run(None, cast)

    want, got = run(original), run(optimised)
    errors = [float(np.abs(np.asarray(g, np.float64) - w).max() / max(np.abs(w).max(), 1e-12))
              for g, w in zip(got, want)]
    top1 = float(np.mean(np.asarray(got[0]).reshape(len(want[0]), -1).argmax(1)
                         == np.asarray(want[0]).reshape(len(want[0]), -1).argmax(1)))
    return {"max_relative_error": max(errors), "top1_agreement": top1}


def format_optimize_report(report: dict) -> str:
    before, after = report["before"], report["after"]
    rows = [("", "before", "after", "ratio"),
            ("size (MiB)", f"{before['bytes'] / 2**20:.3f}", f"{after['bytes'] / 2**20:.3f}",
             f"{after['bytes'] / max(before['bytes'], 1):.3f}"),
            ("ops", str(before["ops"]), str(after["ops"]),
             f"{after['ops'] / max(before['ops'], 1):.3f}"),
            ("GFLOPs (est.)", f"{before['flops'] / 1e9:.4f}", f"{after['flops'] / 1e9:.4f}",
             f"{after['flops'] / max(before['flops'], 1):.3f}"),
            ("weight sparsity", f"{before['weight_sparsity']:.3f}",
             f"{after['weight_sparsity']:.3f}", "")]
    lines = [f"{a:<16}{b:>12}{c:>12}{d:>8}" for a, b, c, d in rows]
    lines.append("passes: " + ", ".join(f"{k} {v}" for k, v in report["passes"].items()))
    if "check" in report:
        c = report["check"]
        lines.append(f"check on calibration data: max relative error "
                     f"{c['max_relative_error']:.3g}, top-1 agreement {c['top1_agreement']:.3f}")
    lines.append(f"wrote {report['written']}")
    return "\n".join(lines)
