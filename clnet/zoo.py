"""Model builders (onnx.helper, seeded random weights) for tests and benchmarks.

These are real ONNX graphs of real architectures, built in code so that no
binary model files need to be committed or downloaded.
"""
from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper


class Builder:
    """Nodes and seeded random initializers of one model under construction."""

    def __init__(self, seed: int):
        self.rng = np.random.default_rng(seed)
        self.nodes: list = []
        self.inits: list = []
        self.count = 0

    def name(self, prefix: str) -> str:
        self.count += 1
        return f"{prefix}_{self.count}"

    def const(self, array: np.ndarray, prefix: str = "w") -> str:
        name = self.name(prefix)
        self.inits.append(numpy_helper.from_array(np.asarray(array), name))
        return name

    def node(self, op: str, inputs: list, n_out: int = 1, **attrs) -> list:
        outs = [self.name(op.lower()) for _ in range(n_out)]
        self.nodes.append(helper.make_node(op, inputs, outs, name=self.name(op), **attrs))
        return outs

    def conv(self, x: str, cin: int, cout: int, k: int, stride: int = 1, group: int = 1,
             bias: bool = False) -> str:
        fan_in = cin // group * k * k
        w = self.rng.standard_normal((cout, cin // group, k, k)).astype(np.float32)
        w *= np.sqrt(2.0 / fan_in)
        inputs = [x, self.const(w)]
        if bias:
            inputs.append(self.const(self.rng.standard_normal(cout).astype(np.float32) * 0.1))
        return self.node("Conv", inputs, kernel_shape=[k, k], strides=[stride, stride],
                         pads=[k // 2] * 4, group=group)[0]

    def bn(self, x: str, c: int) -> str:
        r = self.rng
        params = [r.uniform(0.5, 1.5, c), r.standard_normal(c) * 0.1,
                  r.standard_normal(c) * 0.1, r.uniform(0.5, 1.5, c)]
        names = [self.const(p.astype(np.float32), "bn") for p in params]
        return self.node("BatchNormalization", [x] + names, epsilon=1e-5)[0]

    def model(self, inputs: list, outputs: list, opset: int, name: str) -> onnx.ModelProto:
        graph = helper.make_graph(self.nodes, name, inputs, outputs, self.inits)
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)],
                                  producer_name="clnet.zoo")
        model.ir_version = min(model.ir_version, 8)
        onnx.checker.check_model(model)
        return model


def resnet18(batch=1, size: int = 224, classes: int = 1000, seed: int = 0,
             opset: int = 13) -> onnx.ModelProto:
    """ResNet-18 with unfolded BatchNormalization; input 'input' [batch,3,size,size]."""
    b = Builder(seed)
    x = b.node("Relu", [b.bn(b.conv("input", 3, 64, 7, 2), 64)])[0]
    x = b.node("MaxPool", [x], kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1])[0]
    cin = 64
    for cout, stride in ((64, 1), (128, 2), (256, 2), (512, 2)):
        for block in range(2):
            s = stride if block == 0 else 1
            y = b.node("Relu", [b.bn(b.conv(x, cin, cout, 3, s), cout)])[0]
            y = b.bn(b.conv(y, cout, cout, 3), cout)
            short = x if s == 1 and cin == cout else b.bn(b.conv(x, cin, cout, 1, s), cout)
            x = b.node("Relu", [b.node("Add", [y, short])[0]])[0]
            cin = cout
    x = b.node("GlobalAveragePool", [x])[0]
    x = b.node("Flatten", [x], axis=1)[0]
    fc_w = (b.rng.standard_normal((classes, 512)) * np.sqrt(1.0 / 512)).astype(np.float32)
    fc_b = (b.rng.standard_normal(classes) * 0.01).astype(np.float32)
    b.node("Gemm", [x, b.const(fc_w), b.const(fc_b)], transB=1)
    b.nodes[-1].output[0] = "logits"
    inp = helper.make_tensor_value_info("input", TensorProto.FLOAT, [batch, 3, size, size])
    out = helper.make_tensor_value_info("logits", TensorProto.FLOAT, [batch, classes])
    return b.model([inp], [out], opset, "resnet18")


def inverted_residual(b: Builder, x: str, cin: int, cout: int, stride: int, expand: int,
                      relu6: tuple) -> str:
    """MobileNetV2 block: 1x1 expand, 3x3 depthwise, 1x1 project (+ identity)."""
    hidden = cin * expand
    y = x
    if expand != 1:
        y = b.node("Clip", [b.bn(b.conv(y, cin, hidden, 1), hidden), *relu6])[0]
    y = b.node("Clip", [b.bn(b.conv(y, hidden, hidden, 3, stride, group=hidden), hidden),
                        *relu6])[0]
    y = b.bn(b.conv(y, hidden, cout, 1), cout)
    if stride == 1 and cin == cout:
        y = b.node("Add", [y, x])[0]
    return y


def mobilenet_v2(batch=1, size: int = 224, classes: int = 1000, seed: int = 0,
                 opset: int = 13) -> onnx.ModelProto:
    """MobileNetV2 (depthwise + 1x1 convs, ReLU6 as Clip); input 'input'."""
    b = Builder(seed)
    relu6 = (b.const(np.array(0.0, np.float32), "lo"), b.const(np.array(6.0, np.float32), "hi"))
    x = b.node("Clip", [b.bn(b.conv("input", 3, 32, 3, 2), 32), *relu6])[0]
    cin = 32
    for expand, cout, repeats, stride in ((1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2),
                                          (6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 3, 2),
                                          (6, 320, 1, 1)):
        for i in range(repeats):
            x = inverted_residual(b, x, cin, cout, stride if i == 0 else 1, expand, relu6)
            cin = cout
    x = b.node("Clip", [b.bn(b.conv(x, cin, 1280, 1), 1280), *relu6])[0]
    x = b.node("Flatten", [b.node("GlobalAveragePool", [x])[0]], axis=1)[0]
    fc_w = (b.rng.standard_normal((classes, 1280)) * np.sqrt(1.0 / 1280)).astype(np.float32)
    fc_b = (b.rng.standard_normal(classes) * 0.01).astype(np.float32)
    b.node("Gemm", [x, b.const(fc_w), b.const(fc_b)], transB=1)
    b.nodes[-1].output[0] = "logits"
    inp = helper.make_tensor_value_info("input", TensorProto.FLOAT, [batch, 3, size, size])
    out = helper.make_tensor_value_info("logits", TensorProto.FLOAT, [batch, classes])
    return b.model([inp], [out], opset, "mobilenet_v2")


def dense(b: Builder, x: str, n_in: int, n_out: int) -> str:
    """x @ W + bias, as a MatMul and an Add (as exporters write it)."""
    w = (b.rng.standard_normal((n_in, n_out)) / np.sqrt(n_in)).astype(np.float32)
    bias = (b.rng.standard_normal(n_out) * 0.02).astype(np.float32)
    return b.node("Add", [b.node("MatMul", [x, b.const(w)])[0], b.const(bias, "b")])[0]


def layer_norm(b: Builder, x: str, hidden: int) -> str:
    """LayerNormalization over the last axis."""
    scale = b.rng.uniform(0.8, 1.2, hidden).astype(np.float32)
    shift = (b.rng.standard_normal(hidden) * 0.02).astype(np.float32)
    return b.node("LayerNormalization", [x, b.const(scale, "ln"), b.const(shift, "ln")],
                  axis=-1, epsilon=1e-5)[0]


def attention(b: Builder, x: str, seq: int, hidden: int, heads: int) -> str:
    """Multi-head self-attention of a [1, seq, hidden] input, with its output projection."""
    dh = hidden // heads
    split = b.const(np.array([1, seq, heads, dh], np.int64), "shape")
    merged = b.const(np.array([1, seq, hidden], np.int64), "shape")

    def project(perm: list) -> str:
        y = b.node("Reshape", [dense(b, x, hidden, hidden), split])[0]
        return b.node("Transpose", [y], perm=perm)[0]

    q, k, v = project([0, 2, 1, 3]), project([0, 2, 3, 1]), project([0, 2, 1, 3])
    scores = b.node("MatMul", [q, k])[0]
    scores = b.node("Div", [scores, b.const(np.array(np.sqrt(dh), np.float32), "scale")])[0]
    ctx = b.node("MatMul", [b.node("Softmax", [scores], axis=-1)[0], v])[0]
    ctx = b.node("Transpose", [ctx], perm=[0, 2, 1, 3])[0]
    return dense(b, b.node("Reshape", [ctx, merged])[0], hidden, hidden)


def gelu(b: Builder, x: str) -> str:
    """0.5 * x * (1 + erf(x / sqrt 2)), the exact GELU as exporters write it."""
    inner = b.node("Div", [x, b.const(np.array(np.sqrt(2.0), np.float32), "c")])[0]
    one_plus = b.node("Add", [b.node("Erf", [inner])[0], b.const(np.array(1.0, np.float32),
                                                                  "c")])[0]
    half_x = b.node("Mul", [x, b.const(np.array(0.5, np.float32), "c")])[0]
    return b.node("Mul", [half_x, one_plus])[0]


def bert_encoder(layers: int = 4, hidden: int = 256, seq: int = 128, heads: int = 4,
                 vocab: int = 1000, seed: int = 0, opset: int = 17) -> onnx.ModelProto:
    """A BERT-style encoder: token + position embeddings, `layers` post-LN blocks.

    Input 'input_ids' int64 [1, seq]; output 'hidden' [1, seq, hidden].
    """
    b = Builder(seed)
    table = (b.rng.standard_normal((vocab, hidden)) * 0.1).astype(np.float32)
    position = (b.rng.standard_normal((1, seq, hidden)) * 0.1).astype(np.float32)
    x = b.node("Gather", [b.const(table, "emb"), "input_ids"], axis=0)[0]
    x = layer_norm(b, b.node("Add", [x, b.const(position, "pos")])[0], hidden)
    for _ in range(layers):
        x = layer_norm(b, b.node("Add", [x, attention(b, x, seq, hidden, heads)])[0], hidden)
        ffn = dense(b, gelu(b, dense(b, x, hidden, 4 * hidden)), 4 * hidden, hidden)
        x = layer_norm(b, b.node("Add", [x, ffn])[0], hidden)
    b.nodes[-1].output[0] = "hidden"
    inp = helper.make_tensor_value_info("input_ids", TensorProto.INT64, [1, seq])
    out = helper.make_tensor_value_info("hidden", TensorProto.FLOAT, [1, seq, hidden])
    return b.model([inp], [out], opset, "bert_encoder")


def conv_shapes(model: onnx.ModelProto) -> list:
    """(input shape, weight shape, attrs) of every distinct Conv in the model."""
    inferred = onnx.shape_inference.infer_shapes(model)
    shapes = {v.name: [d.dim_value for d in v.type.tensor_type.shape.dim]
              for v in list(inferred.graph.value_info) + list(inferred.graph.input)}
    inits = {t.name: list(t.dims) for t in model.graph.initializer}
    found = []
    for node in model.graph.node:
        if node.op_type != "Conv":
            continue
        attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
        key = (tuple(shapes[node.input[0]]), tuple(inits[node.input[1]]),
               tuple(sorted((k, tuple(v) if isinstance(v, list) else v)
                            for k, v in attrs.items())))
        if key not in [f[:3] for f in found]:
            found.append(key + (attrs,))
    return [(f[0], f[1], f[3]) for f in found]


def single_conv(x_shape, w_shape, attrs) -> onnx.ModelProto:
    """One Conv (+ bias + Relu) with seeded random weights: input "x", output "y"."""
    rng = np.random.default_rng(0)
    w = rng.standard_normal(w_shape).astype(np.float32) * 0.1
    b = rng.standard_normal(w_shape[0]).astype(np.float32)
    graph = helper.make_graph(
        [helper.make_node("Conv", ["x", "w", "b"], ["c"], **attrs),
         helper.make_node("Relu", ["c"], ["y"])], "conv",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, list(x_shape))],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
        [numpy_helper.from_array(w, "w"), numpy_helper.from_array(b, "b")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    return model


def recurrent(op: str, seq: int, n_in: int, hidden: int, *, layers: int = 1,
              bidirectional: bool = False, batch: int = 1, seed: int = 0,
              **attrs) -> onnx.ModelProto:
    """`layers` stacked RNN/GRU/LSTM nodes (a CRNN's head with layers=2): input
    "x" [seq, batch, n_in], output "y" [seq, batch, dirs * hidden]; between
    layers Y [seq, dirs, batch, hidden] is transposed and reshaped as
    exporters write it."""
    gates = {"RNN": 1, "GRU": 3, "LSTM": 4}[op]
    dirs = 2 if bidirectional else 1
    b = Builder(seed)
    x, width = "x", n_in
    merged = b.const(np.array([seq, batch, dirs * hidden], np.int64), "shape")
    for _ in range(layers):
        scale = 1.0 / np.sqrt(hidden)
        w = (b.rng.uniform(-scale, scale, (dirs, gates * hidden, width))).astype(np.float32)
        r = (b.rng.uniform(-scale, scale, (dirs, gates * hidden, hidden))).astype(np.float32)
        bias = (b.rng.uniform(-scale, scale, (dirs, 2 * gates * hidden))).astype(np.float32)
        y = b.node(op, [x, b.const(w), b.const(r), b.const(bias, "b")], hidden_size=hidden,
                   direction="bidirectional" if bidirectional else "forward", **attrs)[0]
        y = b.node("Transpose", [y], perm=[0, 2, 1, 3])[0]
        x, width = b.node("Reshape", [y, merged])[0], dirs * hidden
    b.nodes[-1].output[0] = "y"
    inp = helper.make_tensor_value_info("x", TensorProto.FLOAT, [seq, batch, n_in])
    out = helper.make_tensor_value_info("y", TensorProto.FLOAT, [seq, batch, dirs * hidden])
    return b.model([inp], [out], 14, op.lower())
