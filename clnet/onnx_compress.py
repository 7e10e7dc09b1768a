"""Lossy compression of an ONNX ModelProto, for ``clnet optimize``:
magnitude pruning (per weight or whole output channels), int8 weights
(per output channel, behind DequantizeLinear) and float16 conversion with
chosen inputs/outputs kept float32 through Cast nodes.
"""
from __future__ import annotations

from typing import Optional

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from .errors import ClnetError
from .onnx_rewrite import ProtoGraph, node_attrs

GEMM_OPS = ("Conv", "ConvTranspose", "Gemm", "MatMul")
# (op, input index) that ONNX requires to stay float32 in a float16 model
FLOAT32_ONLY = {("Resize", 1), ("Resize", 2), ("Upsample", 1)}
INT8_MIN_ELEMENTS = 256


def _weights(m: ProtoGraph, tables: bool = False) -> dict:
    """Float weight initializer -> its output-channel axis (first consumer);
    with tables, also Gather's embedding tables (one scale per row)."""
    found: dict = {}
    for node in m.nodes:
        if tables and node.op_type == "Gather" and node.input[0] in m.inits \
                and node_attrs(node).get("axis", 0) == 0 and m.inits[node.input[0]].ndim == 2 \
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
            if node_attrs(node).get("group", 1) != 1:
                continue
            axis = 1
        elif node.op_type == "Gemm":
            axis = 0 if node_attrs(node).get("transB", 0) else 1
        else:
            axis = w.ndim - 1
        found[name] = axis
    return found


def prune(m: ProtoGraph, fraction: float, structured: bool) -> int:
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


def quantize_weights(m: ProtoGraph) -> int:
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


def to_fp16(m: ProtoGraph, keep: Optional[tuple]) -> int:
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
            _rename(m.nodes, info.name, cast, outputs=False)
            head.append(helper.make_node("Cast", [info.name], [cast], to=f16,
                                         name=cast + "_cast"))
        else:
            info.type.tensor_type.elem_type = f16
    for info in m.graph.output:
        if info.type.tensor_type.elem_type != f32:
            continue
        if keep_all or info.name in keep:
            inner = m.fresh(info.name + "_fp16")
            _rename(m.nodes, info.name, inner, outputs=True)
            tail.append(helper.make_node("Cast", [inner], [info.name], to=f32,
                                         name=info.name + "_cast"))
        else:
            info.type.tensor_type.elem_type = f16
    m.nodes = head + m.nodes + tail
    del m.graph.value_info[:]
    return converted


def _rename(nodes, old: str, new: str, outputs: bool) -> None:
    """Nodes read (and, with outputs, write) tensor `new` where they named `old`."""
    for node in nodes:
        fields = (node.input, node.output) if outputs else (node.input,)
        for names in fields:
            for i, name in enumerate(names):
                if name == old:
                    names[i] = new


def _dequantize_to_fp16(m: ProtoGraph) -> set:
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
