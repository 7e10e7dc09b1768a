"""Lossless rewrites of an ONNX ModelProto, for ``clnet optimize``.

``ProtoGraph`` is a mutable view of a model (nodes, initializers as numpy
arrays, consumers); the passes edit it and ``commit`` writes it back.
Constant folding (with static Shape nodes), BatchNorm folding into
Conv/Gemm, bias fusion (Conv + Add -> Conv with bias, 2-D MatMul + Add ->
Gemm) and dead-code removal; each returns how many nodes it changed.
"""
from __future__ import annotations

from typing import Optional

import numpy as np
import onnx
from onnx import helper, numpy_helper

from .frontend.onnx import attribute_value
from .graph import Node, Value
from .passes.batchnorm import DEFAULT_EPSILON, batchnorm_affine
from .passes.fold import NEVER_FOLD, evaluate

# the file keeps int8 weights behind their DequantizeLinear (folding them
# would store float weights again)
KEEP_UNFOLDED = NEVER_FOLD | {"DequantizeLinear"}


class ProtoGraph:
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


def inferred_shapes(model: "onnx.ModelProto", static_only: bool = False) -> dict:
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


def node_attrs(node) -> dict:
    """A NodeProto's attributes as a name -> value dict."""
    return {a.name: attribute_value(a) for a in node.attribute}


def fold_constants(m: ProtoGraph) -> int:
    """Evaluate every node whose inputs are all known (and static Shapes)."""
    static = inferred_shapes(m.commit(), static_only=True)
    folded, kept = 0, []
    for node in m.nodes:
        present = [n for n in node.input if n]
        if node.op_type == "Constant":
            value = evaluate(Node("Constant", [], [Value(node.output[0])], node_attrs(node)), m.opset)
            m.inits[node.output[0]] = value[0]
            folded += 1
            continue
        if node.op_type == "Shape" and present[0] in static \
                and node.output[0] not in m.outputs:
            attrs = node_attrs(node)
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
                                node_attrs(node), node.name), m.opset)
        for name, value in zip(node.output, results):
            m.inits[name] = value
        folded += 1
    m.nodes = kept
    return folded


def _bn_affine(m: ProtoGraph, bn) -> Optional[tuple]:
    if any(a.name == "training_mode" and a.i for a in bn.attribute) or len(bn.output) > 1:
        return None
    if not all(n in m.inits for n in bn.input[1:5]):
        return None
    eps = next((a.f for a in bn.attribute if a.name == "epsilon"), DEFAULT_EPSILON)
    return batchnorm_affine(*(m.inits[n] for n in bn.input[1:5]), eps)


def fold_batchnorm(m: ProtoGraph) -> int:
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


def _fold_into(m: ProtoGraph, node, scale, shift) -> bool:
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
        attrs = node_attrs(node)
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


def fuse_bias(m: ProtoGraph) -> int:
    """Conv + Add(per-channel const) -> Conv bias; 2-D MatMul + Add -> Gemm."""
    shapes = inferred_shapes(m.commit())
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


def _rank_known_two(m: ProtoGraph, name: str) -> bool:
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


def remove_dead(m: ProtoGraph) -> int:
    needed = set(m.outputs)
    kept = []
    for node in reversed(m.nodes):
        if any(o in needed for o in node.output):
            kept.append(node)
            needed.update(n for n in node.input if n)
    removed = len(m.nodes) - len(kept)
    m.nodes = kept[::-1]
    return removed
