"""Single-op (and short-chain) ONNX models at the shapes real models use.

The table behind `tools/bench_nodes.py --ops`.  Each case is one op (or a
2-3 op chain) on a shape taken from a real network: BERT / GPT-2 hidden
states [1,128,768] and attention heads [1,12,128,64], CNN feature maps
[1,64,56,56] .. [1,512,7,7], a speech front end [1,80,3000], and tiny
tensors ([1,16], [4096]) where per-run overhead is all there is.  Binary
ops run on each broadcasting pattern: same shape, a bias along the inner
axis, a per-channel scale along the middle axes, a mask along the outer
axes, a scalar.  Data inputs are graph inputs (never initializers) so that
neither runtime folds the op away; weights, indices and scalars are
initializers, as in the models.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from onnx import TensorProto, helper, numpy_helper

RNG = np.random.default_rng(0)
TYPES = {np.dtype(np.float32): TensorProto.FLOAT, np.dtype(np.float16): TensorProto.FLOAT16,
         np.dtype(np.int64): TensorProto.INT64, np.dtype(np.int32): TensorProto.INT32,
         np.dtype(np.bool_): TensorProto.BOOL}

BERT = (1, 128, 768)        # hidden states of BERT-base / GPT-2 at 128 tokens
HEADS = (1, 12, 128, 64)    # one attention's per-head Q, K or V
SCORES = (1, 12, 128, 128)  # attention scores
FMAP = (1, 64, 56, 56)      # a ResNet stage-1 feature map
SPEECH = (1, 80, 3000)      # Whisper's log-mel input
TINY = (1, 16)


@dataclass
class Case:
    """One benchmark model: nodes over feeds (graph inputs) and inits."""
    op: str                 # the row group of the report
    shape: str              # what the row says about shapes
    nodes: list
    feeds: dict
    inits: dict = field(default_factory=dict)
    out: int = TensorProto.FLOAT
    opset: int = 18

    @property
    def name(self) -> str:
        return f"{self.op} {self.shape}"

    def model(self):
        inputs = [helper.make_tensor_value_info(n, TYPES[a.dtype], a.shape)
                  for n, a in self.feeds.items()]
        inits = [numpy_helper.from_array(a, n) for n, a in self.inits.items()]
        graph = helper.make_graph(self.nodes, "op", inputs,
                                  [helper.make_tensor_value_info("y", self.out, None)], inits)
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", self.opset)])
        model.ir_version = 9 if self.opset >= 21 else 8
        return model


def rand(*shape, low=None) -> np.ndarray:
    """Normal floats; with low, uniform in [low, low + 1) (for Log, Sqrt, Pow)."""
    if low is not None:
        return (RNG.random(shape) + low).astype(np.float32)
    return RNG.standard_normal(shape).astype(np.float32)


def dims(shape) -> str:
    return "x".join(str(d) for d in shape) if shape else "scalar"


def node(op: str, inputs: list, output: str = "y", **attrs):
    return helper.make_node(op, inputs, [output], **attrs)


def single(op: str, shape: str, feeds: dict, inits: dict = None, opset: int = 18,
           out: int = TensorProto.FLOAT, **attrs) -> Case:
    """A one-node case whose inputs are the feeds, then the inits, in order
    (an init named "" stands for an omitted optional input)."""
    inits = inits or {}
    names = list(feeds) + [n if not n.startswith("_") else "" for n in inits]
    return Case(op, shape, [node(op, names, **attrs)], feeds,
                {n: a for n, a in inits.items() if not n.startswith("_")}, out, opset)


# --------------------------------------------------------------- elementwise --
UNARY = {   # op: (input low bound or None, opset, attributes)
    "Relu": (None, 18, {}), "Sigmoid": (None, 18, {}), "Tanh": (None, 18, {}),
    "Exp": (None, 18, {}), "Log": (0.1, 18, {}), "Erf": (None, 18, {}),
    "Sqrt": (0.1, 18, {}), "Gelu": (None, 20, {}), "HardSwish": (None, 18, {}),
    "HardSigmoid": (None, 18, {}), "LeakyRelu": (None, 18, {"alpha": 0.1}),
    "Elu": (None, 18, {}), "Softplus": (None, 18, {}), "Mish": (None, 18, {}),
    "Neg": (None, 18, {}), "Abs": (None, 18, {}), "Reciprocal": (0.1, 18, {}),
    "Floor": (None, 18, {}), "Sin": (None, 18, {}), "Cos": (None, 18, {}),
}


def unary_cases() -> list:
    cases = []
    for op, (low, opset, attrs) in UNARY.items():
        shapes = [BERT, FMAP] + ([TINY, (4096,)] if op in ("Relu", "Sigmoid", "Gelu") else [])
        for shape in shapes:
            cases.append(single(op, dims(shape), {"x": rand(*shape, low=low)}, opset=opset,
                                **attrs))
    cases.append(single("Clip", dims(FMAP), {"x": rand(*FMAP)},
                        {"lo": np.float32(0), "hi": np.float32(6)}))          # ReLU6
    return cases


def binary_cases() -> list:
    patterns = {   # label: (a shape, b shape)
        "same 1x128x768": (BERT, BERT),
        "inner 1x128x768 + 768": (BERT, (768,)),
        "inner 1x128x768 + 1x128x1": (BERT, (1, 128, 1)),
        "middle 1x64x56x56 + 1x64x1x1": (FMAP, (1, 64, 1, 1)),
        "outer 4x128x768 + 1x128x768": ((4, 128, 768), (1, 128, 768)),
        "mask 1x12x128x128 + 1x1x1x128": (SCORES, (1, 1, 1, 128)),
        "mask 1x12x128x128 + 1x1x128x128": (SCORES, (1, 1, 128, 128)),
        "scalar 1x128x768": (BERT, ()),
        "tiny 1x16": (TINY, TINY),
        "tiny 4096 + scalar": ((4096,), ()),
    }
    cases = []
    for label, (a, b) in patterns.items():
        feeds = {"a": rand(*a)}
        inits = {"b": rand(*b)} if len(b) <= 1 else {}
        if not inits:
            feeds["b"] = rand(*b)
        cases.append(single("Add", label, feeds, inits))
    few = ["same 1x128x768", "inner 1x128x768 + 1x128x1", "middle 1x64x56x56 + 1x64x1x1",
           "scalar 1x128x768"]
    for op in ("Mul", "Sub", "Div", "Max"):
        for label in few:
            a, b = patterns[label]
            low = 0.5 if op == "Div" else None
            feeds, inits = {"a": rand(*a)}, {}
            if b:
                feeds["b"] = rand(*b, low=low)
            else:
                inits["b"] = rand(low=low)
            cases.append(single(op, label, feeds, inits))
    for exponent in (2.0, 0.5, 3.3):
        cases.append(single("Pow", f"{dims(BERT)} ^ {exponent}", {"x": rand(*BERT, low=0.1)},
                            {"p": np.float32(exponent)}))
    cases.append(single("Pow", f"{dims(BERT)} ^ {dims(BERT)}",
                        {"x": rand(*BERT, low=0.1), "p": rand(*BERT)}))
    for op in ("Equal", "Greater", "Less"):
        cases.append(single(op, f"{dims(BERT)} vs scalar", {"x": rand(*BERT)},
                            {"s": np.float32(0.0)}, out=TensorProto.BOOL))
    cases.append(single("Greater", f"{dims(FMAP)} vs same", {"a": rand(*FMAP), "b": rand(*FMAP)},
                        out=TensorProto.BOOL))
    mask = RNG.random((1, 1, 128, 128)) > 0.5
    cases.append(single("Where", "1x1x128x128 mask, 1x12x128x128, scalar",
                        {"c": mask, "x": rand(*SCORES)}, {"s": np.float32(-1e4)}))
    cases.append(single("Where", f"same {dims(BERT)}", {"c": RNG.random(BERT) > 0.5,
                                                         "x": rand(*BERT), "z": rand(*BERT)}))
    for target, to, out in (("float16", TensorProto.FLOAT16, TensorProto.FLOAT16),
                            ("int64", TensorProto.INT64, TensorProto.INT64)):
        cases.append(single("Cast", f"{dims(BERT)} float -> {target}", {"x": rand(*BERT)},
                            out=out, to=to))
    cases.append(single("Cast", f"{dims(BERT)} bool -> float", {"x": RNG.random(BERT) > 0.5},
                        to=TensorProto.FLOAT))
    cases.append(single("Cast", "1x128 int64 -> float",
                        {"x": RNG.integers(0, 2, (1, 128)).astype(np.int64)},
                        to=TensorProto.FLOAT))
    return cases


# -------------------------------------------------------- normalizations --
def norm_cases() -> list:
    cases = []
    for shape, axis in ((SCORES, -1), (BERT, -1), ((1, 10), -1), ((1, 12, 128, 128), 2),
                        (SPEECH, 1)):
        cases.append(single("Softmax", f"{dims(shape)} axis {axis}", {"x": rand(*shape)},
                            axis=axis))
    for shape in (BERT, (1, 197, 384), (1, 16, 64)):
        h = shape[-1]
        cases.append(single("LayerNormalization", dims(shape), {"x": rand(*shape)},
                            {"g": rand(h), "b": rand(h)}, axis=-1))
        cases.append(single("RMSNormalization", dims(shape), {"x": rand(*shape)},
                            {"g": rand(h)}, opset=23, axis=-1))
    cases.append(single("BatchNormalization", dims(FMAP), {"x": rand(*FMAP)},
                        {"s": rand(64), "b": rand(64), "m": rand(64), "v": rand(64, low=0.5)}))
    cases.append(single("InstanceNormalization", dims(FMAP), {"x": rand(*FMAP)},
                        {"s": rand(64), "b": rand(64)}))
    cases.append(single("GroupNormalization", "1x64x56x56 groups 32", {"x": rand(*FMAP)},
                        {"s": rand(64), "b": rand(64)}, opset=21, num_groups=32))
    return cases


def reduce_cases() -> list:
    cases = []
    axes_cases = ((BERT, [-1], "last"), (BERT, [1], "middle (tokens)"),
                  (FMAP, [2, 3], "spatial"), (SPEECH, [1], "middle"), ((1, 1000), [-1], "last"))
    for op in ("ReduceMean", "ReduceSum", "ReduceMax"):
        for shape, axes, where in axes_cases:
            if op != "ReduceMean" and shape == (1, 1000):
                continue
            cases.append(single(op, f"{dims(shape)} {where}", {"x": rand(*shape)},
                                {"axes": np.array(axes, np.int64)}, keepdims=1))
    for shape in ((1, 1000), (1, 128, 8192)):
        cases.append(single("ArgMax", dims(shape), {"x": rand(*shape)}, out=TensorProto.INT64,
                            axis=-1))
    cases.append(single("CumSum", "1x128x768 axis 1", {"x": rand(*BERT)},
                        {"axis": np.array(1, np.int64)}))
    return cases


# ------------------------------------------------------------ linear algebra --
def matmul_cases() -> list:
    cases = [single("MatMul", "1x16 @ 16x16", {"x": rand(1, 16)}, {"w": rand(16, 16)}),
             single("MatMul", "1x1x768 @ 768x768 (decode)", {"x": rand(1, 1, 768)},
                    {"w": rand(768, 768)}),
             single("MatMul", "1x128x768 @ 768x768", {"x": rand(*BERT)}, {"w": rand(768, 768)}),
             single("MatMul", "1x128x768 @ 768x3072", {"x": rand(*BERT)},
                    {"w": rand(768, 3072)}),
             single("MatMul", "512x512 @ 512x512", {"x": rand(512, 512), "w": rand(512, 512)}),
             single("MatMul", "QK^T 1x12x128x64 @ 1x12x64x128",
                    {"q": rand(*HEADS), "k": rand(1, 12, 64, 128)}),
             single("MatMul", "AV 1x12x128x128 @ 1x12x128x64",
                    {"p": rand(*SCORES), "v": rand(*HEADS)}),
             single("MatMul", "decode QK^T 1x12x1x64 @ 1x12x64x128",
                    {"q": rand(1, 12, 1, 64), "k": rand(1, 12, 64, 128)})]
    cases += [single("Gemm", "1x16 @ 16x16^T + b", {"x": rand(1, 16)},
                     {"w": rand(16, 16), "b": rand(16)}, transB=1),
              single("Gemm", "1x512 @ 1000x512^T + b", {"x": rand(1, 512)},
                     {"w": rand(1000, 512), "b": rand(1000)}, transB=1),
              single("Gemm", "128x768 @ 768x768^T + b", {"x": rand(128, 768)},
                     {"w": rand(768, 768), "b": rand(768)}, transB=1)]
    cases.append(single("Einsum", "bhid,bhjd->bhij", {"q": rand(*HEADS), "k": rand(*HEADS)},
                        equation="bhid,bhjd->bhij"))
    return cases


def conv_cases() -> list:
    def conv(label, x, w, bias=True, **attrs):
        inits = {"w": rand(*w)}
        if bias:
            inits["b"] = rand(w[0])
        return single("Conv", label, {"x": rand(*x)}, inits, **attrs)
    cases = [conv("1x1 1x64x56x56 -> 256", FMAP, (256, 64, 1, 1)),
             conv("3x3 1x64x56x56 -> 64", FMAP, (64, 64, 3, 3), pads=[1, 1, 1, 1]),
             conv("3x3/2 stem 1x3x224x224 -> 32", (1, 3, 224, 224), (32, 3, 3, 3),
                  strides=[2, 2], pads=[1, 1, 1, 1]),
             conv("3x3 1x256x14x14 -> 256", (1, 256, 14, 14), (256, 256, 3, 3),
                  pads=[1, 1, 1, 1]),
             conv("3x3 1x512x7x7 -> 512", (1, 512, 7, 7), (512, 512, 3, 3), pads=[1, 1, 1, 1]),
             conv("depthwise 3x3 1x96x56x56", (1, 96, 56, 56), (96, 1, 3, 3), group=96,
                  pads=[1, 1, 1, 1]),
             conv("depthwise 3x3/2 1x144x56x56", (1, 144, 56, 56), (144, 1, 3, 3), group=144,
                  strides=[2, 2], pads=[1, 1, 1, 1]),
             conv("1-D k3 1x80x3000 -> 384", SPEECH, (384, 80, 3), pads=[1, 1]),
             conv("tiny 3x3 1x8x8x8 -> 8", (1, 8, 8, 8), (8, 8, 3, 3), pads=[1, 1, 1, 1])]
    cases.append(single("ConvTranspose", "4x4/2 1x64x64x64 -> 32", {"x": rand(1, 64, 64, 64)},
                        {"w": rand(64, 32, 4, 4), "b": rand(32)}, strides=[2, 2],
                        pads=[1, 1, 1, 1]))
    pool = dict(kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1])
    cases += [single("MaxPool", "3x3/2 1x64x112x112", {"x": rand(1, 64, 112, 112)}, **pool),
              single("MaxPool", "2x2/2 1x64x56x56", {"x": rand(*FMAP)}, kernel_shape=[2, 2],
                     strides=[2, 2]),
              single("AveragePool", "3x3/2 1x64x112x112", {"x": rand(1, 64, 112, 112)}, **pool),
              single("AveragePool", "2x2/2 1x64x56x56", {"x": rand(*FMAP)},
                     kernel_shape=[2, 2], strides=[2, 2]),
              single("GlobalAveragePool", "1x512x7x7", {"x": rand(1, 512, 7, 7)}),
              single("GlobalAveragePool", "1x1280x7x7", {"x": rand(1, 1280, 7, 7)}),
              single("GlobalAveragePool", dims(FMAP), {"x": rand(*FMAP)}),
              single("GlobalMaxPool", "1x512x7x7", {"x": rand(1, 512, 7, 7)})]
    return cases


# ---------------------------------------------------------------- movement --
def movement_cases() -> list:
    i64 = lambda *v: np.array(v, np.int64)  # noqa: E731
    cases = [single("Transpose", "heads 1x128x12x64 -> 0213", {"x": rand(1, 128, 12, 64)},
                    perm=[0, 2, 1, 3]),
             single("Transpose", "merge 1x12x128x64 -> 0213", {"x": rand(*HEADS)},
                    perm=[0, 2, 1, 3]),
             single("Transpose", "K^T 1x12x128x64 -> 0132", {"x": rand(*HEADS)},
                    perm=[0, 1, 3, 2]),
             single("Transpose", "NCHW->NHWC 1x64x56x56", {"x": rand(*FMAP)},
                    perm=[0, 2, 3, 1]),
             single("Transpose", "2-D 768x3072", {"x": rand(768, 3072)}, perm=[1, 0]),
             single("Transpose", "tiny 4x4", {"x": rand(4, 4)}, perm=[1, 0])]
    cases += [single("Concat", "last 2x 1x128x384", {"a": rand(1, 128, 384),
                                                    "b": rand(1, 128, 384)}, axis=-1),
              single("Concat", "channels 2x 1x64x56x56", {"a": rand(*FMAP), "b": rand(*FMAP)},
                     axis=1),
              single("Concat", "KV cache 1x12x127x64 + 1x12x1x64",
                     {"a": rand(1, 12, 127, 64), "b": rand(1, 12, 1, 64)}, axis=2),
              single("Concat", "tiny 2x 1x16", {"a": rand(*TINY), "b": rand(*TINY)}, axis=1)]
    cases += [single("Slice", "QKV third 1x128x2304 last axis", {"x": rand(1, 128, 2304)},
                     {"s": i64(768), "e": i64(1536), "a": i64(-1)}),
              single("Slice", "crop 1x64x56x56 [1:-1,1:-1]", {"x": rand(*FMAP)},
                     {"s": i64(1, 1), "e": i64(-1, -1), "a": i64(2, 3)}),
              single("Slice", "CLS token 1x128x768 [:, :1]", {"x": rand(*BERT)},
                     {"s": i64(0), "e": i64(1), "a": i64(1)}),
              single("Slice", "reverse 1x80x3000 step -1", {"x": rand(*SPEECH)},
                     {"s": i64(-1), "e": i64(-3001), "a": i64(2), "st": i64(-1)})]
    split3 = Case("Split", "QKV 1x128x2304 into 3", [helper.make_node(
        "Split", ["x"], ["y", "k", "v"], axis=-1, num_outputs=3)], {"x": rand(1, 128, 2304)})
    split2 = Case("Split", "channels 1x128x56x56 into 2", [helper.make_node(
        "Split", ["x"], ["y", "z"], axis=1, num_outputs=2)], {"x": rand(1, 128, 56, 56)})
    cases += [split3, split2]
    cases += [Case("Gather", "embedding 30522x768 [1,128]", [node("Gather", ["table", "ids"])],
                   {"ids": RNG.integers(0, 30522, (1, 128)).astype(np.int64)},
                   {"table": rand(30522, 768)}),
              single("Gather", "token 0 of 1x128x768", {"x": rand(*BERT)},
                     {"i": np.array(0, np.int64)}, axis=1),
              single("Gather", "rows 8 of 1x128x768", {"x": rand(*BERT)},
                     {"i": i64(*range(0, 128, 16))}, axis=1)]
    cases += [single("Reshape", "1x128x768 -> 1x128x12x64", {"x": rand(*BERT)},
                     {"s": i64(1, 128, 12, 64)}),
              single("Flatten", "1x512x7x7", {"x": rand(1, 512, 7, 7)}, axis=1),
              single("Unsqueeze", "1x128 -> 1x1x1x128", {"x": rand(1, 128)}, {"a": i64(1, 2)})]
    cases += [single("Resize", "nearest 2x 1x64x56x56", {"x": rand(*FMAP)},
                     {"_roi": None, "s": np.array([1, 1, 2, 2], np.float32)}, mode="nearest"),
              single("Resize", "linear 2x 1x64x128x128", {"x": rand(1, 64, 128, 128)},
                     {"_roi": None, "s": np.array([1, 1, 2, 2], np.float32)}, mode="linear"),
              single("Pad", "constant 1x64x56x56 by 1", {"x": rand(*FMAP)},
                     {"p": i64(0, 0, 1, 1, 0, 0, 1, 1)}),
              single("Pad", "reflect 1x64x128x128 by 3", {"x": rand(1, 64, 128, 128)},
                     {"p": i64(0, 0, 3, 3, 0, 0, 3, 3)}, mode="reflect"),
              single("Pad", "1-D 1x80x3000 by 2", {"x": rand(*SPEECH)}, {"p": i64(0, 0, 2, 0, 0, 2)}),
              single("Expand", "mask 1x1x1x128 -> 1x12x128x128", {"x": rand(1, 1, 1, 128)},
                     {"s": i64(*SCORES)}),
              single("Expand", "768 -> 1x128x768", {"x": rand(768)}, {"s": i64(*BERT)}),
              single("Tile", "1x64x56x56 x (1,2,1,1)", {"x": rand(*FMAP)}, {"r": i64(1, 2, 1, 1)}),
              single("DepthToSpace", "1x256x28x28 block 2", {"x": rand(1, 256, 28, 28)},
                     blocksize=2),
              Case("TopK", "1x1000 k 5", [helper.make_node("TopK", ["x", "k"], ["y", "idx"])],
                   {"x": rand(1, 1000)}, {"k": i64(5)})]
    return cases


# ------------------------------------------------------------------- chains --
def chain_cases() -> list:
    c = []
    c.append(Case("chain Sigmoid*x (SiLU)", dims(FMAP),
                  [node("Sigmoid", ["x"], "s"), node("Mul", ["x", "s"])], {"x": rand(*FMAP)}))
    c.append(Case("chain Add+Gelu (bias)", dims((1, 128, 3072)),
                  [node("Add", ["x", "b"], "h"), node("Gelu", ["h"])],
                  {"x": rand(1, 128, 3072)}, {"b": rand(3072)}, opset=20))
    c.append(Case("chain Add+LayerNorm (residual)", dims(BERT),
                  [node("Add", ["x", "r"], "h"),
                   node("LayerNormalization", ["h", "g", "b"], axis=-1)],
                  {"x": rand(*BERT), "r": rand(*BERT)}, {"g": rand(768), "b": rand(768)}))
    c.append(Case("chain Mul+Add+Softmax (attn)", dims(SCORES),
                  [node("Mul", ["x", "scale"], "s"), node("Add", ["s", "m"], "h"),
                   node("Softmax", ["h"], axis=-1)],
                  {"x": rand(*SCORES), "m": rand(1, 1, 1, 128)}, {"scale": np.float32(0.125)}))
    c.append(Case("chain MatMul+Add (linear)", "1x128x768 @ 768x768 + b",
                  [node("MatMul", ["x", "w"], "h"), node("Add", ["h", "b"])],
                  {"x": rand(*BERT)}, {"w": rand(768, 768), "b": rand(768)}))
    c.append(Case("chain Conv+Relu", "3x3 1x64x56x56 -> 64",
                  [node("Conv", ["x", "w", "b"], "h", pads=[1, 1, 1, 1]), node("Relu", ["h"])],
                  {"x": rand(*FMAP)}, {"w": rand(64, 64, 3, 3), "b": rand(64)}))
    c.append(Case("chain Mul+Add (BN folded)", "1x64x56x56 * 1x64x1x1 + 1x64x1x1",
                  [node("Mul", ["x", "s"], "h"), node("Add", ["h", "b"])],
                  {"x": rand(*FMAP)}, {"s": rand(1, 64, 1, 1), "b": rand(1, 64, 1, 1)}))
    return c


def all_cases() -> list:
    return (unary_cases() + binary_cases() + norm_cases() + reduce_cases() + matmul_cases()
            + conv_cases() + movement_cases() + chain_cases())
