"""``clnet optimize``: rewrite an ONNX model so that it is smaller and cheaper
anywhere it runs (onnxruntime included), and report what changed.

Passes, in order: constant folding (with static Shape nodes), BatchNorm
folding into Conv/Gemm, bias fusion (Conv + Add -> Conv with bias, 2-D
MatMul + Add -> Gemm), dead-code removal; then, as asked, magnitude pruning
(per weight, or whole output channels), int8 weights (per output channel,
behind DequantizeLinear) and float16 conversion with chosen inputs/outputs
kept float32 through Cast nodes.  The report gives file size, op count and
estimated FLOPs before and after.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from .errors import ClnetError, ModelError
from .passes.batchnorm import DEFAULT_EPSILON, batchnorm_affine
from .graph import Node, Value
from .passes.fold import NEVER_FOLD, evaluate

GEMM_OPS = ("Conv", "ConvTranspose", "Gemm", "MatMul")
# the file keeps int8 weights behind their DequantizeLinear (folding them
# would store float weights again)
KEEP_UNFOLDED = NEVER_FOLD | {"DequantizeLinear"}
# (op, input index) that ONNX requires to stay float32 in a float16 model
FLOAT32_ONLY = {("Resize", 1), ("Resize", 2), ("Upsample", 1)}
INT8_MIN_ELEMENTS = 256


@dataclass
class OptimizeOptions:
    fp16: bool = False
    keep_fp32: Optional[tuple] = None     # input/output names kept fp32; None: all
    int8: bool = False
    prune: float = 0.0
    structured: bool = False


class _Model:
    """A mutable view of a ModelProto: nodes, initializers, consumers."""

    def __init__(self, model: "onnx.ModelProto"):
        self.model = model
        self.graph = model.graph
        self.opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")),
                          1)
        self.inits = {t.name: numpy_helper.to_array(t) for t in self.graph.initializer}
        self.nodes = list(self.graph.node)
        self.outputs = {o.name for o in self.graph.output}

    def consumers(self) -> dict:
        users: dict = {}
        for node in self.nodes:
            for name in node.input:
                if name:
                    users.setdefault(name, []).append(node)
        return users

    def single_user(self, name: str, users: dict):
        found = users.get(name, [])
        return found[0] if len(found) == 1 and name not in self.outputs else None

    def fresh(self, base: str) -> str:
        taken = set(self.inits) | {o for n in self.nodes for o in n.output} | \
            {i.name for i in self.graph.input}
        name, i = base, 0
        while name in taken:
            i += 1
            name = f"{base}_{i}"
        return name

    def commit(self) -> "onnx.ModelProto":
        used = {name for n in self.nodes for name in n.input} | self.outputs
        del self.graph.node[:]
        self.graph.node.extend(self.nodes)
        del self.graph.initializer[:]
        self.graph.initializer.extend(numpy_helper.from_array(np.asarray(a), name)
                                      for name, a in self.inits.items() if name in used)
        inputs = [i for i in self.graph.input if i.name not in self.inits or i.name in used]
        del self.graph.input[:]
        self.graph.input.extend(inputs)
        return self.model


# ----------------------------------------------------------- analysis ----
def _shapes(model: "onnx.ModelProto", static_only: bool = False) -> dict:
    """name -> shape after ONNX shape inference; unknown dims count as 1,
    or, with static_only, shapes with any unknown dim are left out."""
    try:
        inferred = onnx.shape_inference.infer_shapes(model)
    except Exception:
        inferred = model
    shapes = {}
    g = inferred.graph
    for info in list(g.input) + list(g.value_info) + list(g.output):
        t = info.type.tensor_type
        if not t.HasField("shape"):
            continue
        known = [d.HasField("dim_value") and d.dim_value > 0 for d in t.shape.dim]
        if static_only and not all(known):
            continue
        shapes[info.name] = tuple(d.dim_value if k else 1 for d, k in zip(t.shape.dim, known))
    for init in g.initializer:
        shapes[init.name] = tuple(init.dims)
    return shapes


def estimate_flops(model: "onnx.ModelProto") -> int:
    """Multiply-adds count twice; every other op one per output element."""
    shapes = _shapes(model)
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


# -------------------------------------------------------------- passes ----
def _attrs(node) -> dict:
    from .frontend.onnx import _attr
    return {a.name: _attr(a) for a in node.attribute}


def fold_constants(m: _Model) -> int:
    """Evaluate every node whose inputs are all known (and static Shapes)."""
    static = _shapes(m.commit(), static_only=True)
    folded, kept = 0, []
    for node in m.nodes:
        present = [n for n in node.input if n]
        if node.op_type == "Constant":
            value = evaluate(Node("Constant", [], [Value(node.output[0])], _attrs(node)), m.opset)
            m.inits[node.output[0]] = value[0]
            folded += 1
            continue
        if node.op_type == "Shape" and present[0] in static \
                and node.output[0] not in m.outputs:
            attrs = _attrs(node)
            dims = static[present[0]]
            m.inits[node.output[0]] = np.asarray(
                dims[slice(attrs.get("start", 0), attrs.get("end", len(dims)))], np.int64)
            folded += 1
            continue
        if node.op_type in KEEP_UNFOLDED or node.domain not in ("", "ai.onnx") \
                or not all(n in m.inits for n in present) \
                or any(o in m.outputs for o in node.output):
            kept.append(node)
            continue
        inputs = [Value(n, data=m.inits[n]) if n else None for n in node.input]
        results = evaluate(Node(node.op_type, inputs, [Value(o) for o in node.output],
                                _attrs(node), node.name), m.opset)
        for name, value in zip(node.output, results):
            m.inits[name] = value
        folded += 1
    m.nodes = kept
    return folded


def _bn_affine(m: _Model, bn) -> Optional[tuple]:
    if any(a.name == "training_mode" and a.i for a in bn.attribute) or len(bn.output) > 1:
        return None
    if not all(n in m.inits for n in bn.input[1:5]):
        return None
    eps = next((a.f for a in bn.attribute if a.name == "epsilon"), DEFAULT_EPSILON)
    return batchnorm_affine(*(m.inits[n] for n in bn.input[1:5]), eps)


def fold_batchnorm(m: _Model) -> int:
    """Conv/Gemm followed by inference BatchNormalization -> one node."""
    users, removed, count = m.consumers(), set(), 0
    for node in m.nodes:
        if node.op_type not in ("Conv", "Gemm") or len(node.input) < 2 \
                or node.input[1] not in m.inits:
            continue
        bn = m.single_user(node.output[0], users)
        if bn is None or bn.op_type != "BatchNormalization" or bn.input[0] != node.output[0]:
            continue
        affine = _bn_affine(m, bn)
        if affine is None or not _fold_into(m, node, *affine):
            continue
        node.output[0] = bn.output[0]
        removed.add(id(bn))
        count += 1
    m.nodes = [n for n in m.nodes if id(n) not in removed]
    return count


def _fold_into(m: _Model, node, scale, shift) -> bool:
    """Scale the weight's output channels by `scale` and bias by scale, + shift."""
    w = np.asarray(m.inits[node.input[1]], np.float64)
    has_bias = len(node.input) > 2 and bool(node.input[2])
    if has_bias and node.input[2] not in m.inits:
        return False
    bias = np.asarray(m.inits[node.input[2]], np.float64) if has_bias else np.zeros(1)
    if node.op_type == "Conv":
        if w.shape[0] != scale.size:
            return False
        new_w = w * scale.reshape((-1,) + (1,) * (w.ndim - 1))
    else:  # Gemm: y = alpha A B' + beta C, then BN per column of y
        attrs = _attrs(node)
        trans_b = attrs.get("transB", 0)
        alpha = attrs.get("alpha", 1.0)
        n_out = w.shape[0] if trans_b else w.shape[1]
        if w.ndim != 2 or n_out != scale.size or bias.size not in (1, n_out) \
                or (bias.ndim == 2 and bias.shape[0] != 1) or alpha == 0:
            return False
        new_w = w * (scale[:, None] if trans_b else scale[None, :])
        # the new C is used with beta = alpha, so divide by alpha
        bias = bias * attrs.get("beta", 1.0) / alpha
        shift = shift / alpha
        kept = [a for a in node.attribute if a.name != "beta"]
        del node.attribute[:]
        node.attribute.extend(kept + [helper.make_attribute("beta", float(alpha))])
    new_b = np.broadcast_to(bias.reshape(-1), scale.shape) * scale + shift
    dtype = m.inits[node.input[1]].dtype
    w_name, b_name = m.fresh(node.input[1] + "_bnfold"), m.fresh(node.input[1] + "_bnfold_b")
    m.inits[w_name] = new_w.astype(dtype)
    m.inits[b_name] = new_b.astype(dtype)
    node.input[1] = w_name
    if len(node.input) > 2:
        node.input[2] = b_name
    else:
        node.input.append(b_name)
    return True


def fuse_bias(m: _Model) -> int:
    """Conv + Add(per-channel const) -> Conv bias; 2-D MatMul + Add -> Gemm."""
    shapes = _shapes(m.commit())
    users, removed, count = m.consumers(), set(), 0
    for node in m.nodes:
        if node.op_type not in ("Conv", "MatMul"):
            continue
        add = m.single_user(node.output[0], users)
        if add is None or add.op_type != "Add" or id(add) in removed:
            continue
        other = add.input[1] if add.input[0] == node.output[0] else add.input[0]
        if other not in m.inits:
            continue
        bias = np.asarray(m.inits[other])
        if node.op_type == "Conv":
            out = shapes.get(node.output[0])
            channels = m.inits[node.input[1]].shape[0] if node.input[1] in m.inits else None
            if out is None or channels is None or bias.size != channels \
                    or bias.ndim > len(out) or bias.reshape(-1).size != channels \
                    or (bias.ndim >= 3 and bias.shape[-3] != channels) \
                    or (bias.ndim < 3 and bias.size != 1):
                continue
            vec = bias.reshape(-1)
            if len(node.input) > 2 and node.input[2]:
                vec = vec + m.inits[node.input[2]]
                node.input[2] = m.fresh(other + "_conv_bias")
            else:
                node.input.append(m.fresh(other + "_conv_bias"))
            m.inits[node.input[2]] = vec.astype(bias.dtype)
        else:
            a_shape = shapes.get(node.input[0])
            if a_shape is None or len(a_shape) != 2 or node.input[1] not in m.inits \
                    or m.inits[node.input[1]].ndim != 2 or bias.ndim > 1 and bias.shape[0] != 1:
                continue
            n = m.inits[node.input[1]].shape[1]
            if bias.size not in (1, n) or not _rank_known_two(m, node.input[0]):
                continue
            node.op_type = "Gemm"
            node.input.append(other)
        node.output[0] = add.output[0]
        removed.add(id(add))
        count += 1
    m.nodes = [n for n in m.nodes if id(n) not in removed]
    return count


def _rank_known_two(m: _Model, name: str) -> bool:
    """The MatMul input's rank is 2 for every feed (not just after inference)."""
    for info in list(m.graph.input) + list(m.graph.value_info):
        if info.name == name:
            return len(info.type.tensor_type.shape.dim) == 2
    try:
        inferred = onnx.shape_inference.infer_shapes(m.model)
    except Exception:
        return False
    for info in inferred.graph.value_info:
        if info.name == name and info.type.tensor_type.HasField("shape"):
            return len(info.type.tensor_type.shape.dim) == 2
    return False


def remove_dead(m: _Model) -> int:
    needed = set(m.outputs)
    kept = []
    for node in reversed(m.nodes):
        if any(o in needed for o in node.output):
            kept.append(node)
            needed.update(n for n in node.input if n)
    removed = len(m.nodes) - len(kept)
    m.nodes = kept[::-1]
    return removed


# ---------------------------------------------------------- compression ----
def _weights(m: _Model, tables: bool = False) -> dict:
    """Float weight initializer -> its output-channel axis (first consumer);
    with tables, also Gather's embedding tables (one scale per row)."""
    found: dict = {}
    for node in m.nodes:
        if tables and node.op_type == "Gather" and node.input[0] in m.inits \
                and _attrs(node).get("axis", 0) == 0 and m.inits[node.input[0]].ndim == 2 \
                and m.inits[node.input[0]].dtype.kind == "f":
            found.setdefault(node.input[0], 0)
            continue
        if node.op_type not in GEMM_OPS or len(node.input) < 2:
            continue
        name = node.input[1]
        if name not in m.inits or name in found:
            continue
        w = m.inits[name]
        if w.dtype.kind != "f" or w.ndim < 2:
            continue
        if node.op_type == "Conv":
            axis = 0
        elif node.op_type == "ConvTranspose":  # weights are [C_in, C_out / group, k...]
            if _attrs(node).get("group", 1) != 1:
                continue
            axis = 1
        elif node.op_type == "Gemm":
            axis = 0 if _attrs(node).get("transB", 0) else 1
        else:
            axis = w.ndim - 1
        found[name] = axis
    return found


def prune(m: _Model, fraction: float, structured: bool) -> int:
    """Zero the smallest weights (or output channels, by L2 norm)."""
    pruned = 0
    for name, axis in _weights(m).items():
        w = np.array(m.inits[name])
        if structured:
            moved = np.moveaxis(w, axis, 0)
            norms = np.sqrt((moved.reshape(moved.shape[0], -1).astype(np.float64) ** 2).sum(1))
            drop = np.argsort(norms, kind="stable")[:int(fraction * len(norms))]
            moved[drop] = 0
            w = np.moveaxis(moved, 0, axis)
        else:
            count = int(fraction * w.size)
            if count:
                order = np.argpartition(np.abs(w).reshape(-1), count - 1)[:count]
                flat = w.reshape(-1)
                flat[order] = 0
                w = flat.reshape(w.shape)
        pruned += int(np.count_nonzero(w == 0))
        m.inits[name] = w
    return pruned


def quantize_weights(m: _Model) -> int:
    """Weights and embedding tables -> int8 (per output channel or row,
    symmetric) + DequantizeLinear."""
    count = 0
    new_nodes = []
    per_axis = m.opset >= 13
    for name, axis in _weights(m, tables=True).items():
        w = np.asarray(m.inits[name], np.float32)
        if w.size < INT8_MIN_ELEMENTS:
            continue
        if per_axis:
            peak = np.abs(np.moveaxis(w, axis, 0).reshape(w.shape[axis], -1)).max(axis=1)
        else:
            peak = np.asarray(np.abs(w).max())
        scale = np.where(peak > 0, peak / 127.0, 1.0).astype(np.float32)
        shape = [1] * w.ndim
        if per_axis:
            shape[axis] = -1
        q = np.clip(np.rint(w / scale.reshape(shape)), -127, 127).astype(np.int8)
        q_name, s_name, z_name = (m.fresh(name + suffix) for suffix in ("_q", "_scale", "_zp"))
        m.inits[q_name] = q
        m.inits[s_name] = scale.astype(m.inits[name].dtype)
        m.inits[z_name] = np.zeros(scale.shape, np.int8)
        del m.inits[name]
        attrs = {"axis": axis} if per_axis else {}
        new_nodes.append(helper.make_node("DequantizeLinear", [q_name, s_name, z_name], [name],
                                          name=name + "_dequantize", **attrs))
        count += 1
    m.nodes = new_nodes + m.nodes
    return count


def to_fp16(m: _Model, keep: Optional[tuple]) -> int:
    """float32 -> float16 everywhere except the kept inputs/outputs."""
    f32, f16 = TensorProto.FLOAT, TensorProto.FLOAT16
    names = {v.name for v in list(m.graph.input) + list(m.graph.output)}
    unknown = set(keep or ()) - names
    if unknown:
        raise ClnetError(f"--keep-fp32 names {sorted(unknown)} are not graph inputs or outputs "
                         f"(they are {sorted(names)})")
    keep_all = keep is None
    float32_only = {n.input[i] for n in m.nodes for (op, i) in FLOAT32_ONLY
                    if n.op_type == op and len(n.input) > i}
    if m.opset < 19:  # DequantizeLinear takes float16 scales from opset 19 on
        float32_only |= _dequantize_to_fp16(m)
    converted = 0
    for name, arr in list(m.inits.items()):
        if arr.dtype == np.float32 and name not in float32_only:
            m.inits[name] = arr.astype(np.float16)
            converted += 1
    for node in m.nodes:
        for attr in node.attribute:
            if node.op_type in ("Cast", "RandomNormal", "RandomUniform", "EyeLike") \
                    and attr.name in ("to", "dtype") and attr.i == f32:
                attr.i = f16
            elif attr.type == onnx.AttributeProto.TENSOR and attr.t.data_type == f32:
                attr.t.CopyFrom(numpy_helper.from_array(
                    numpy_helper.to_array(attr.t).astype(np.float16), attr.t.name))
    head, tail = [], []
    for info in m.graph.input:
        if info.name in m.inits or info.type.tensor_type.elem_type != f32:
            continue
        if keep_all or info.name in keep:
            cast = m.fresh(info.name + "_fp16")
            for node in m.nodes:
                for i, n in enumerate(node.input):
                    if n == info.name:
                        node.input[i] = cast
            head.append(helper.make_node("Cast", [info.name], [cast], to=f16,
                                         name=cast + "_cast"))
        else:
            info.type.tensor_type.elem_type = f16
    for info in m.graph.output:
        if info.type.tensor_type.elem_type != f32:
            continue
        if keep_all or info.name in keep:
            inner = m.fresh(info.name + "_fp16")
            for node in m.nodes:
                for i, n in enumerate(node.output):
                    if n == info.name:
                        node.output[i] = inner
                for i, n in enumerate(node.input):
                    if n == info.name:
                        node.input[i] = inner
            tail.append(helper.make_node("Cast", [inner], [info.name], to=f32,
                                         name=info.name + "_cast"))
        else:
            info.type.tensor_type.elem_type = f16
    m.nodes = head + m.nodes + tail
    del m.graph.value_info[:]
    return converted


def _dequantize_to_fp16(m: _Model) -> set:
    """Before opset 19: keep DequantizeLinear float32 and Cast its output."""
    scales, nodes = set(), []
    for node in m.nodes:
        nodes.append(node)
        if node.op_type != "DequantizeLinear":
            continue
        scales.add(node.input[1])
        wide = m.fresh(node.output[0] + "_fp32")
        nodes.append(helper.make_node("Cast", [wide], [node.output[0]],
                                      to=TensorProto.FLOAT16, name=wide + "_cast"))
        node.output[0] = wide
    m.nodes = nodes
    return scales


# -------------------------------------------------------------- driver ----
def optimize_model(model: "onnx.ModelProto", options: OptimizeOptions) -> tuple:
    """(optimised ModelProto, dict of what each pass did)."""
    work = onnx.ModelProto()
    work.CopyFrom(model)
    m = _Model(work)
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
    from .frontend.onnx import _read, _load_external

    proto, base, _ = _read(src)
    _load_external(proto, base)
    before = summarize(proto)
    result, done = optimize_model(proto, options)
    try:
        onnx.save(result, dst)
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
