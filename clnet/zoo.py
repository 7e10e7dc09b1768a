"""Model builders (onnx.helper, seeded random weights) for tests and benchmarks.

These are real ONNX graphs of real architectures, built in code so that no
binary model files need to be committed or downloaded.
"""
from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper


class _Builder:
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
    b = _Builder(seed)
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
    logits = b.node("Gemm", [x, b.const(fc_w), b.const(fc_b)], transB=1)[0]
    b.nodes[-1].output[0] = "logits"
    inp = helper.make_tensor_value_info("input", TensorProto.FLOAT, [batch, 3, size, size])
    out = helper.make_tensor_value_info("logits", TensorProto.FLOAT, [batch, classes])
    return b.model([inp], [out], opset, "resnet18")
