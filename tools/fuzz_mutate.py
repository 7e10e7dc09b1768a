"""Seed models and mutations for tools/fuzz_models.py.

Seeds are small valid models built with onnx.helper: a conv net, a
transformer-ish block and one with control flow (If).  A mutation is
byte-level (flips, truncations, insertions on the serialised model) or
structural (on the protobuf: dims, attributes, dtypes, names, node order,
opsets, raw data).  Every random choice comes from the `random.Random`
passed in, so a case is reproduced from its seed alone.
"""
from __future__ import annotations

import random

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

F = TensorProto.FLOAT


def _init(rng: np.random.Generator, name: str, shape) -> "onnx.TensorProto":
    return numpy_helper.from_array(rng.standard_normal(shape).astype(np.float32) * 0.3, name)


def _model(nodes, inputs, outputs, inits, opset=17) -> "onnx.ModelProto":
    graph = helper.make_graph(nodes, "seed", inputs, outputs, inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])


def conv_net() -> "onnx.ModelProto":
    rng = np.random.default_rng(1)
    nodes = [
        helper.make_node("Conv", ["x", "w1", "b1"], ["c1"], pads=[1, 1, 1, 1], name="conv1"),
        helper.make_node("BatchNormalization", ["c1", "g", "be", "m", "v"], ["n1"], name="bn"),
        helper.make_node("Relu", ["n1"], ["r1"], name="relu"),
        helper.make_node("MaxPool", ["r1"], ["p1"], kernel_shape=[2, 2], strides=[2, 2],
                         name="pool"),
        helper.make_node("Conv", ["p1", "w2"], ["c2"], kernel_shape=[3, 3], group=2,
                         name="conv2"),
        helper.make_node("GlobalAveragePool", ["c2"], ["gp"], name="gap"),
        helper.make_node("Flatten", ["gp"], ["f"], name="flat"),
        helper.make_node("Gemm", ["f", "wf", "bf"], ["logits"], transB=1, name="fc"),
        helper.make_node("Softmax", ["logits"], ["y"], axis=1, name="softmax"),
    ]
    inits = [_init(rng, "w1", (4, 3, 3, 3)), _init(rng, "b1", (4,)), _init(rng, "g", (4,)),
             _init(rng, "be", (4,)), _init(rng, "m", (4,)),
             numpy_helper.from_array(np.ones(4, np.float32), "v"),
             _init(rng, "w2", (6, 2, 3, 3)), _init(rng, "wf", (5, 6)), _init(rng, "bf", (5,))]
    return _model(nodes, [helper.make_tensor_value_info("x", F, ["N", 3, 8, 8])],
                  [helper.make_tensor_value_info("y", F, ["N", 5])], inits)


def transformer_block() -> "onnx.ModelProto":
    rng = np.random.default_rng(2)
    d = 8
    shape = numpy_helper.from_array(np.array([0, 0, 2, d // 2], np.int64), "heads")
    merge = numpy_helper.from_array(np.array([0, 0, d], np.int64), "merge")
    nodes = [
        helper.make_node("LayerNormalization", ["x", "ln_g", "ln_b"], ["h"], axis=-1,
                         name="ln"),
        helper.make_node("MatMul", ["h", "wq"], ["q0"], name="q"),
        helper.make_node("MatMul", ["h", "wk"], ["k0"], name="k"),
        helper.make_node("MatMul", ["h", "wv"], ["v0"], name="v"),
        helper.make_node("Reshape", ["q0", "heads"], ["q1"], name="rq"),
        helper.make_node("Reshape", ["k0", "heads"], ["k1"], name="rk"),
        helper.make_node("Reshape", ["v0", "heads"], ["v1"], name="rv"),
        helper.make_node("Transpose", ["q1"], ["q"], perm=[0, 2, 1, 3], name="tq"),
        helper.make_node("Transpose", ["k1"], ["kt"], perm=[0, 2, 3, 1], name="tk"),
        helper.make_node("Transpose", ["v1"], ["vv"], perm=[0, 2, 1, 3], name="tv"),
        helper.make_node("MatMul", ["q", "kt"], ["s0"], name="qk"),
        helper.make_node("Mul", ["s0", "scale"], ["s"], name="scale_mul"),
        helper.make_node("Softmax", ["s"], ["a"], axis=-1, name="attn"),
        helper.make_node("MatMul", ["a", "vv"], ["o0"], name="av"),
        helper.make_node("Transpose", ["o0"], ["o1"], perm=[0, 2, 1, 3], name="to"),
        helper.make_node("Reshape", ["o1", "merge"], ["o2"], name="ro"),
        helper.make_node("Add", ["x", "o2"], ["res"], name="residual"),
        helper.make_node("MatMul", ["res", "w1"], ["f1"], name="ff1"),
        helper.make_node("Gelu", ["f1"], ["f2"], name="gelu", domain=""),
        helper.make_node("MatMul", ["f2", "w2"], ["f3"], name="ff2"),
        helper.make_node("Add", ["res", "f3"], ["y"], name="residual2"),
    ]
    inits = [_init(rng, "ln_g", (d,)), _init(rng, "ln_b", (d,)), _init(rng, "wq", (d, d)),
             _init(rng, "wk", (d, d)), _init(rng, "wv", (d, d)), shape, merge,
             numpy_helper.from_array(np.array(0.5, np.float32), "scale"),
             _init(rng, "w1", (d, 2 * d)), _init(rng, "w2", (2 * d, d))]
    return _model(nodes, [helper.make_tensor_value_info("x", F, ["B", "T", d])],
                  [helper.make_tensor_value_info("y", F, ["B", "T", d])], inits, opset=20)


def control_flow() -> "onnx.ModelProto":
    rng = np.random.default_rng(3)
    then = helper.make_graph(
        [helper.make_node("Mul", ["x", "two"], ["t"], name="double")], "then", [],
        [helper.make_tensor_value_info("t", F, [2, 3])])
    other = helper.make_graph(
        [helper.make_node("Neg", ["x"], ["e"], name="negate")], "else", [],
        [helper.make_tensor_value_info("e", F, [2, 3])])
    nodes = [
        helper.make_node("ReduceSum", ["x"], ["total"], keepdims=0, name="sum"),
        helper.make_node("Greater", ["total", "zero"], ["cond"], name="positive"),
        helper.make_node("If", ["cond"], ["branch"], then_branch=then, else_branch=other,
                         name="if"),
        helper.make_node("Gather", ["branch", "idx"], ["g"], axis=1, name="gather"),
        helper.make_node("Concat", ["g", "branch"], ["cat"], axis=1, name="concat"),
        helper.make_node("Clip", ["cat", "lo", "hi"], ["y"], name="clip"),
    ]
    inits = [numpy_helper.from_array(np.array(2.0, np.float32), "two"),
             numpy_helper.from_array(np.array(0.0, np.float32), "zero"),
             numpy_helper.from_array(np.array([2, 0], np.int64), "idx"),
             numpy_helper.from_array(np.array(-1.0, np.float32), "lo"),
             numpy_helper.from_array(np.array(1.0, np.float32), "hi"), _init(rng, "unused", (3,))]
    return _model(nodes, [helper.make_tensor_value_info("x", F, [2, 3])],
                  [helper.make_tensor_value_info("y", F, [2, 5])], inits)


SEEDS = {"conv_net": conv_net, "transformer": transformer_block, "control_flow": control_flow}


class NotApplicable(Exception):
    """The mutation has nothing to act on in this model."""


# ------------------------------------------------------------ byte level --
def flip_bytes(data: bytes, rnd: random.Random) -> bytes:
    out = bytearray(data)
    for _ in range(rnd.choice((1, 2, 4, 16))):
        out[rnd.randrange(len(out))] ^= 1 << rnd.randrange(8)
    return bytes(out)


def truncate(data: bytes, rnd: random.Random) -> bytes:
    return data[:rnd.randrange(len(data))]


def insert_bytes(data: bytes, rnd: random.Random) -> bytes:
    at = rnd.randrange(len(data) + 1)
    junk = bytes(rnd.randrange(256) for _ in range(rnd.choice((1, 3, 8, 64))))
    return data[:at] + junk + data[at:]


BYTE_MUTATIONS = {"flip": flip_bytes, "truncate": truncate, "insert": insert_bytes}


# ------------------------------------------------------------ structural --
ODD_INTS = (-(2 ** 62), -(2 ** 31), -7, -1, 0, 1, 2, 3, 5, 64, 2 ** 31, 2 ** 40, 2 ** 62)
ODD_DIMS = (-1, 0, 1, 3, 2 ** 31, 2 ** 40)
DTYPES = (0, 1, 2, 3, 5, 6, 7, 9, 10, 11, 12, 16, 17, 99)
OPS = ("Relu", "Conv", "MatMul", "Gather", "Reshape", "Softmax", "Transpose", "Concat",
       "MaxPool", "Where", "Loop", "Scan", "NoSuchOp", "If", "Slice", "Split", "Expand")


def _graphs(graph: "onnx.GraphProto") -> list:
    """graph and every subgraph within it."""
    found = [graph]
    for node in graph.node:
        for attr in node.attribute:
            if attr.type == onnx.AttributeProto.GRAPH:
                found += _graphs(attr.g)
            for sub in attr.graphs:
                found += _graphs(sub)
    return found


def _pick(rnd: random.Random, items):
    items = list(items)
    if not items:
        raise NotApplicable
    return rnd.choice(items)


def mutate_dim(m, rnd):
    infos = [v for g in _graphs(m.graph) for v in list(g.input) + list(g.output)
             + list(g.value_info) if v.type.tensor_type.shape.dim]
    dim = _pick(rnd, _pick(rnd, infos).type.tensor_type.shape.dim)
    dim.dim_value = rnd.choice(ODD_DIMS)


def mutate_initializer_dims(m, rnd):
    tensor = _pick(rnd, [t for g in _graphs(m.graph) for t in g.initializer if t.dims])
    tensor.dims[rnd.randrange(len(tensor.dims))] = rnd.choice(ODD_DIMS)


def short_raw_data(m, rnd):
    tensor = _pick(rnd, [t for t in m.graph.initializer if t.raw_data or t.float_data])
    if tensor.raw_data:
        tensor.raw_data = tensor.raw_data[:rnd.randrange(len(tensor.raw_data))]
    else:
        del tensor.float_data[rnd.randrange(len(tensor.float_data)):]


def attribute_value(m, rnd):
    node = _pick(rnd, [n for g in _graphs(m.graph) for n in g.node if n.attribute])
    attr = _pick(rnd, [a for a in node.attribute if a.type != onnx.AttributeProto.GRAPH])
    kind = rnd.randrange(4)
    if kind == 0 and attr.ints:
        attr.ints[rnd.randrange(len(attr.ints))] = rnd.choice(ODD_INTS)
    elif kind == 1:
        attr.i = rnd.choice(ODD_INTS)
    elif kind == 2:
        del attr.ints[:]
        attr.ints.extend(rnd.choice(ODD_INTS) for _ in range(rnd.randrange(6)))
    else:
        attr.f = rnd.choice((float("nan"), float("inf"), -1e30, 0.0))


def attribute_type(m, rnd):
    node = _pick(rnd, [n for g in _graphs(m.graph) for n in g.node if n.attribute])
    attr = _pick(rnd, [a for a in node.attribute if a.type != onnx.AttributeProto.GRAPH])
    name = attr.name
    node.attribute.remove(attr)
    node.attribute.append(rnd.choice((
        helper.make_attribute(name, 1.5), helper.make_attribute(name, "text"),
        helper.make_attribute(name, [1.0, 2.0]), helper.make_attribute(name, 3),
        helper.make_attribute(name, [3, -1]), helper.make_attribute(name, ["a", "b"]))))


def dtype(m, rnd):
    if rnd.random() < 0.5:
        info = _pick(rnd, list(m.graph.input) + list(m.graph.output))
        info.type.tensor_type.elem_type = rnd.choice(DTYPES)
    else:
        _pick(rnd, m.graph.initializer).data_type = rnd.choice(DTYPES)


def dangling_name(m, rnd):
    node = _pick(rnd, [n for g in _graphs(m.graph) for n in g.node if n.input])
    node.input[rnd.randrange(len(node.input))] = f"dangling_{rnd.randrange(100)}"


def duplicate_output(m, rnd):
    nodes = [n for g in _graphs(m.graph) for n in g.node]
    a, b = _pick(rnd, nodes), _pick(rnd, nodes)
    a.output[0] = b.output[0]


def cycle(m, rnd):
    nodes = m.graph.node
    if len(nodes) < 2:
        raise NotApplicable
    i = rnd.randrange(len(nodes) - 1)
    later = nodes[rnd.randrange(i + 1, len(nodes))]
    if nodes[i].input:
        nodes[i].input[rnd.randrange(len(nodes[i].input))] = later.output[0]


def reorder(m, rnd):
    nodes = list(m.graph.node)
    rnd.shuffle(nodes)
    del m.graph.node[:]
    m.graph.node.extend(nodes)


def empty_graph(m, rnd):
    graph = _pick(rnd, _graphs(m.graph))
    keep = [n for n in graph.node if rnd.random() < 0.5] if rnd.random() < 0.5 else []
    del graph.node[:]
    graph.node.extend(keep)
    if rnd.random() < 0.3:
        del graph.output[:]


def opset(m, rnd):
    if rnd.random() < 0.5:
        m.opset_import[0].version = rnd.choice((1, 6, 9, 99, 10 ** 6))
    elif rnd.random() < 0.5:
        m.ir_version = rnd.choice((0, 1, 3, 99))
    else:
        _pick(rnd, m.graph.node).domain = rnd.choice(("com.unknown", "ai.onnx.ml", "ai.onnx"))


def op_type(m, rnd):
    _pick(rnd, [n for g in _graphs(m.graph) for n in g.node]).op_type = rnd.choice(OPS)


def arity(m, rnd):
    node = _pick(rnd, [n for g in _graphs(m.graph) for n in g.node])
    if node.input and rnd.random() < 0.5:
        del node.input[rnd.randrange(len(node.input)):]
    else:
        node.input.append(_pick(rnd, [t.name for t in m.graph.initializer] + [""]))


def constant_values(m, rnd):
    """Integer constants (shapes, indices, axes) set to odd values."""
    tensor = _pick(rnd, [t for t in m.graph.initializer if t.data_type == TensorProto.INT64])
    arr = numpy_helper.to_array(tensor).copy()
    if arr.size:
        arr.reshape(-1)[rnd.randrange(arr.size)] = rnd.choice(ODD_INTS)
    tensor.CopyFrom(numpy_helper.from_array(arr, tensor.name))


STRUCTURAL_MUTATIONS = {
    "dim": mutate_dim, "initializer_dims": mutate_initializer_dims,
    "short_raw_data": short_raw_data, "attribute_value": attribute_value,
    "attribute_type": attribute_type, "dtype": dtype, "dangling_name": dangling_name,
    "duplicate_output": duplicate_output, "cycle": cycle, "reorder": reorder,
    "empty_graph": empty_graph, "opset": opset, "op_type": op_type, "arity": arity,
    "constant_values": constant_values,
}


def make_case(seed_bytes: dict, rnd: random.Random) -> tuple:
    """(seed name, [mutation names], model bytes) of one case."""
    name = rnd.choice(sorted(seed_bytes))
    data, done = seed_bytes[name], []
    model = None
    for _ in range(rnd.choice((1, 1, 1, 2, 3))):
        if rnd.random() < 0.25:
            if model is not None:
                data, model = model.SerializeToString(), None
            kind = rnd.choice(sorted(BYTE_MUTATIONS))
            data = BYTE_MUTATIONS[kind](data, rnd)
        else:
            if model is None:
                try:
                    model = onnx.load_model_from_string(data)
                except Exception:       # a byte mutation made it unparsable
                    continue
            kind = rnd.choice(sorted(STRUCTURAL_MUTATIONS))
            try:
                STRUCTURAL_MUTATIONS[kind](model, rnd)
            except NotApplicable:
                kind += "(n/a)"
            except Exception:   # noqa: BLE001 - an earlier mutation left data it cannot read
                kind += "(failed)"
        done.append(kind)
    if model is not None:
        data = model.SerializeToString()
    return name, done, data
