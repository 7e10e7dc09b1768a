"""Graph -> Graph rewrites that need no shapes and no device.

* ``fold_batchnorm``: Conv followed by inference BatchNormalization becomes
  one Conv with rescaled weights and bias.
* ``fuse_gelu``: the five-op erf GELU becomes one Gelu node.
* ``fuse_epilogues``: a residual Add and/or an activation right after a
  Conv/Gemm/MatMul become that node's ``epilogue`` (graph.Epilogue), run in
  the GEMM's epilogue; so does a constant [N] bias Add after a MatMul with
  constant B (``bias``, the bias becoming its third input), and a Mul or
  Div by a 0-d constant right after a MatMul (``alpha``, the GEMM's alpha:
  attention's scores / sqrt(d)).  The lowering falls back to separate
  launches when the shapes turn out not to allow it.
"""
from __future__ import annotations

from dataclasses import replace

import numpy as np

from ..graph import EPILOGUE_ACTIVATIONS, Epilogue, Graph, Node, Value
from .batchnorm import node_batchnorm_affine
from .chains import fuse_elementwise, fuse_matmul_views, fuse_movement, name_activations
from .fold import NEVER_FOLD, evaluate



def _single_consumer(graph: Graph, value: Value, consumers: dict):
    users = consumers.get(value, [])
    if len(users) != 1 or value in graph.outputs:
        return None
    return users[0]


def _is_const(value) -> bool:
    return value is not None and value.is_const


def fold_batchnorm(graph: Graph) -> Graph:
    consumers = graph.consumers()
    removed = set()
    for node in graph.nodes:
        if node.op != "Conv" or node in removed or not _is_const(node.input(1)):
            continue
        bn = _single_consumer(graph, node.outputs[0], consumers)
        if bn is None or bn.op != "BatchNormalization" or bn.attrs.get("training_mode", 0):
            continue
        if len(bn.outputs) > 1 or not all(_is_const(v) for v in bn.inputs[1:5]):
            continue
        if node.input(2) is not None and node.input(2).name and not _is_const(node.input(2)):
            continue
        channels = np.shape(node.inputs[1].data)[:1]
        params = list(bn.inputs[1:5]) + ([node.input(2)] if node.input(2) is not None
                                         and node.input(2).name else [])
        if not channels or any(np.shape(v.data) != channels for v in params):
            continue    # malformed: left to the lowerings, whose errors name the node
        scale, shift = node_batchnorm_affine(bn)
        weight = np.asarray(node.inputs[1].data, np.float32)
        scale_w = scale.astype(np.float32).reshape((-1,) + (1,) * (weight.ndim - 1))
        if weight.flags.writeable and weight.flags.owndata \
                and len(consumers.get(node.inputs[1], ())) == 1:
            # the filters' only user: scaled in place (a new array for every
            # conv was 40-50% of this pass's time, ResNet-18's 47 MB of
            # fresh pages, on every load)
            new_w = np.multiply(weight, scale_w, out=weight)
        else:
            new_w = weight * scale_w
        bias = node.input(2)
        old_b = np.asarray(bias.data, np.float32) if bias is not None and bias.name \
            else np.zeros_like(scale)
        new_b = old_b * scale + shift
        w_val = Value(node.inputs[1].name + "/bnfold", new_w.shape, new_w.dtype, new_w)
        b_val = Value(node.inputs[1].name + "/bnfold_bias", new_b.shape, new_b.dtype, new_b)
        graph.values[w_val.name] = w_val
        graph.values[b_val.name] = b_val
        node.inputs = [node.inputs[0], w_val, b_val]
        node.outputs = [bn.outputs[0]]
        removed.add(bn)
    graph.nodes = [n for n in graph.nodes if n not in removed]
    return graph


def _activation_params(node: Node, opset: int):
    """(name, p0, p1) for a fusable activation node, or None."""
    if node.op not in EPILOGUE_ACTIVATIONS:
        return None
    if node.op == "Clip":
        if opset < 11:
            return ("Clip", node.attrs.get("min", -np.inf), node.attrs.get("max", np.inf))
        lo, hi = -np.inf, np.inf
        for index in (1, 2):
            value = node.input(index)
            if value is None or not value.name:
                continue
            if not value.is_const:
                return None
            bound = float(np.asarray(value.data).reshape(-1)[0])
            lo, hi = (bound, hi) if index == 1 else (lo, bound)
        return ("Clip", lo, hi)
    if node.op == "LeakyRelu":
        return ("LeakyRelu", node.attrs.get("alpha", 0.01), 0.0)
    if node.op == "Swish":
        return ("Swish", node.attrs.get("alpha", 1.0), 0.0)
    if node.op == "HardSigmoid":
        return ("HardSigmoid", node.attrs.get("alpha", 0.2), node.attrs.get("beta", 0.5))
    if node.op == "Gelu" and node.attrs.get("approximate", "none") not in ("none", b"none"):
        return ("GeluTanh", 0.0, 0.0) if node.attrs["approximate"] in ("tanh", b"tanh") \
            else None
    return (node.op, 0.0, 0.0)


def _is_depthwise(node: Node) -> bool:
    weight = node.input(1)
    group = node.attrs.get("group", 1)
    return _is_const(weight) and group > 1 and weight.data.shape[1] == 1


def _matmul_bias(node: Node, add: Node) -> bool:
    """Whether `add` adds a constant [N] vector to MatMul `node` (B constant, 2-D+).

    On success the bias becomes the MatMul's third input.
    """
    b = node.inputs[1]
    if add.op != "Add" or len(add.inputs) != 2 or not _is_const(b) or b.data is None:
        return False
    if np.ndim(b.data) < 2:
        return False
    other = add.inputs[1] if add.inputs[0] is node.outputs[0] else add.inputs[0]
    if other is node.outputs[0] or not _is_const(other) or other.data is None:
        return False
    if np.ndim(other.data) != 1 or np.size(other.data) != np.shape(b.data)[-1]:
        return False
    node.inputs = [node.inputs[0], b, other]
    return True


def fuse_epilogues(graph: Graph) -> Graph:
    """Fuse [residual Add] then [activation] into Conv/Gemm/MatMul producers."""
    consumers = graph.consumers()
    removed = set()
    order = {node: i for i, node in enumerate(graph.nodes)}
    moves = {}
    for node in graph.nodes:
        if node.op not in ("Conv", "Gemm", "MatMul") or node in removed:
            continue
        if node.epilogue is not None:
            continue
        nxt = _single_consumer(graph, node.outputs[0], consumers)
        if nxt in removed:  # already absorbed by another producer
            continue
        epilogue = None   # what this node absorbs, built up below
        scale = _const_scale(node, nxt) if node.op == "MatMul" and nxt is not None else None
        if scale is not None:   # attention's scores / sqrt(d): the GEMM's alpha
            epilogue = replace(epilogue or Epilogue(), alpha=scale)
            node.outputs = [nxt.outputs[0]]
            removed.add(nxt)
            moves[node] = order[nxt]
            nxt = _single_consumer(graph, node.outputs[0], consumers)
        if nxt is not None and node.op == "MatMul" and _matmul_bias(node, nxt):
            epilogue = replace(epilogue or Epilogue(), bias=True)
            node.outputs = [nxt.outputs[0]]
            removed.add(nxt)
            moves[node] = order[nxt]
            nxt = _single_consumer(graph, node.outputs[0], consumers)
        if (nxt is not None and nxt.op == "Add" and not _is_depthwise(node)
                and (node.op == "Conv" or (epilogue is not None and epilogue.bias)
                     or (node.op == "MatMul" and len(node.inputs) == 2))
                and len([v for v in nxt.inputs if v is not None]) == 2):
            other = nxt.inputs[1] if nxt.inputs[0] is node.outputs[0] else nxt.inputs[0]
            broadcast = other.shape is not None and node.outputs[0].shape is not None \
                and tuple(other.shape) != tuple(node.outputs[0].shape)
            if other is not node.outputs[0] and not other.is_const and not broadcast:
                bias = node.input(2)
                node.inputs = [node.inputs[0], node.inputs[1],
                               bias if bias is not None and bias.name else None, other]
                epilogue = replace(epilogue or Epilogue(), residual=True)
                node.outputs = [nxt.outputs[0]]
                removed.add(nxt)
                moves[node] = order[nxt]
                nxt = _single_consumer(graph, node.outputs[0], consumers)
        silu = _silu_after(graph, node, consumers) if nxt is None else None
        if silu is not None and silu[0] not in removed and silu[1] not in removed:
            epilogue = replace(epilogue or Epilogue(), act=("Swish", 1.0, 0.0))
            node.outputs = [silu[1].outputs[0]]
            removed.update(silu)
            moves[node] = max(moves.get(node, 0), order[silu[0]], order[silu[1]])
        if nxt is not None:
            act = _activation_params(nxt, graph.opset)
            if act is not None:
                epilogue = replace(epilogue or Epilogue(), act=act)
                node.outputs = [nxt.outputs[0]]
                removed.add(nxt)
                moves[node] = max(moves.get(node, 0), order[nxt])
        node.epilogue = epilogue
    if removed:
        # a fused node runs where the last node it absorbed ran, so that a
        # residual produced after the original Conv is ready in time
        keyed = [(moves.get(n, order[n]), order[n], n) for n in graph.nodes if n not in removed]
        graph.nodes = [n for _, _, n in sorted(keyed, key=lambda t: (t[0], t[1]))]
    return graph


def _silu_after(graph: Graph, node: Node, consumers: dict):
    """(Sigmoid, Mul) when node's output x is used only by x * sigmoid(x)
    (SiLU, EfficientNet's and YOLO's activation), else None."""
    x = node.outputs[0]
    users = consumers.get(x, [])
    if len(users) != 2 or x in graph.outputs:
        return None
    sig = next((u for u in users if u.op == "Sigmoid"), None)
    mul = next((u for u in users if u.op == "Mul" and u is not sig), None)
    if sig is None or mul is None or _other_input(mul, x) is not sig.outputs[0]:
        return None
    if _single_consumer(graph, sig.outputs[0], consumers) is not mul:
        return None
    return sig, mul


def _const_scale(node: Node, nxt: Node):
    """The factor s when `nxt` is a Mul by, or a Div by, a 0-d float constant
    (x * s, s * x or x / s, s finite and nonzero), else None."""
    if nxt.op not in ("Mul", "Div") or len(nxt.inputs) != 2:
        return None
    other = _other_input(nxt, node.outputs[0])
    if other is None or (nxt.op == "Div" and nxt.inputs[1] is not other):
        return None
    # a 0-d constant: one of shape [1] would turn a 0-d product into shape [1]
    if not _is_const(other) or other.data is None or np.ndim(other.data) != 0 \
            or np.asarray(other.data).dtype.kind != "f":
        return None
    s = float(np.asarray(other.data).reshape(-1)[0])
    if not np.isfinite(s) or s == 0.0:
        return None
    return 1.0 / s if nxt.op == "Div" else s


def _const_scalar(value, target: float) -> bool:
    """Whether value is a one-element constant within 1e-5 of target."""
    if not _is_const(value) or value.data is None or np.size(value.data) != 1:
        return False
    return abs(float(np.asarray(value.data).reshape(-1)[0]) - target) <= 1e-5 * abs(target)


def _other_input(node: Node, value: Value):
    """The input of a two-input node that is not `value` (None if neither/both)."""
    if len(node.inputs) != 2:
        return None
    a, b = node.inputs
    if a is value and b is not value:
        return b
    if b is value and a is not value:
        return a
    return None


def fuse_gelu(graph: Graph) -> Graph:
    """0.5 * x * (1 + erf(x / sqrt 2)), written as exporters write it (Div or
    Mul by 1/sqrt 2, Erf, Add 1, and the two Muls in either order), becomes
    one Gelu node: one launch instead of five, and then fusable into a
    MatMul's epilogue."""
    consumers = graph.consumers()
    producers = graph.producers()
    removed = set()

    def only_user(value, op):
        user = _single_consumer(graph, value, consumers)
        return user if user is not None and user.op == op and user not in removed else None

    for erf in list(graph.nodes):
        if erf.op != "Erf" or erf in removed:
            continue
        scale = producers.get(erf.inputs[0])
        if scale is None or scale in removed or len(scale.inputs) != 2 \
                or _single_consumer(graph, scale.outputs[0], consumers) is not erf:
            continue
        x, c = scale.inputs
        if not ((scale.op == "Div" and _const_scalar(c, np.sqrt(2.0)))
                or (scale.op == "Mul" and _const_scalar(c, 1.0 / np.sqrt(2.0)))):
            continue
        add = only_user(erf.outputs[0], "Add")
        if add is None or not _const_scalar(_other_input(add, erf.outputs[0]), 1.0):
            continue
        mul = only_user(add.outputs[0], "Mul")
        if mul is None:
            continue
        other = _other_input(mul, add.outputs[0])
        half = producers.get(other)
        if other is x:                          # (x * (1 + erf)) * 0.5
            last = only_user(mul.outputs[0], "Mul")
            if last is None or not _const_scalar(_other_input(last, mul.outputs[0]), 0.5):
                continue
            absorbed = [scale, erf, add, mul, last]
        elif half is not None and half.op == "Mul" and half not in removed \
                and _single_consumer(graph, other, consumers) is mul \
                and _other_input(half, x) is not None \
                and _const_scalar(_other_input(half, x), 0.5):   # (x * 0.5) * (1 + erf)
            last = mul
            absorbed = [half, scale, erf, add, mul]
        else:
            continue
        gelu = Node("Gelu", [x], [last.outputs[0]], {"approximate": "none"},
                    name=(erf.name or "gelu") + "/gelu", domain="")
        graph.nodes[graph.nodes.index(last)] = gelu
        removed.update(n for n in absorbed if n is not last)
    graph.nodes = [n for n in graph.nodes if n not in removed]
    return graph


def _reduce_last_axis(node: Node, opset: int) -> bool:
    """A ReduceMean over the last axis only, keeping it."""
    if node.op != "ReduceMean" or not node.attrs.get("keepdims", 1):
        return False
    axes = node.attrs.get("axes")
    if axes is None and len(node.inputs) > 1 and node.inputs[1] is not None:
        axes = node.inputs[1].data if _is_const(node.inputs[1]) else None
    if axes is None:
        return False
    axes = [int(a) for a in np.asarray(axes).reshape(-1)]
    shape = node.inputs[0].shape
    return axes == [-1] or (shape is not None and len(axes) == 1 and axes[0] == len(shape) - 1)


def _square_of(node, producers, consumers, graph):
    """x where node is Pow(x, 2) or Mul(x, x), else None."""
    if node is None:
        return None
    if node.op == "Pow" and _const_scalar(node.input(1), 2.0):
        return node.inputs[0]
    if node.op == "Mul" and len(node.inputs) == 2 and node.inputs[0] is node.inputs[1]:
        return node.inputs[0]
    return None


def fuse_norms(graph: Graph) -> Graph:
    """LayerNorm and RMSNorm as exporters write them out become one
    LayerNormalization / RMSNormalization node over the last axis:

    * RMSNorm (T5, Llama): x / sqrt(mean(x^2) + eps) (or x * 1/sqrt(...),
      x * reciprocal(sqrt(...))), then an optional Mul by a constant weight;
    * LayerNorm (opset < 17 exports): d = x - mean(x); d / sqrt(mean(d^2) +
      eps), then optional Mul by a constant gamma and Add of a constant beta.

    Seven to nine launches become one (kernels_cl/norm.cl)."""
    consumers = graph.consumers()
    producers = graph.producers()
    removed: set = set()

    def only(value, *ops):
        user = _single_consumer(graph, value, consumers)
        return user if user is not None and user.op in ops and user not in removed else None

    for mean in list(graph.nodes):
        if mean in removed or not _reduce_last_axis(mean, graph.opset):
            continue
        square = producers.get(mean.inputs[0])
        x = _square_of(square, producers, consumers, graph)
        if x is None or _single_consumer(graph, square.outputs[0], consumers) is not mean:
            continue
        add = only(mean.outputs[0], "Add")
        eps_value = _other_input(add, mean.outputs[0]) if add is not None else None
        if eps_value is None or not _is_const(eps_value) or np.size(eps_value.data) != 1:
            continue
        eps = float(np.asarray(eps_value.data).reshape(-1)[0])
        sqrt = only(add.outputs[0], "Sqrt")
        if sqrt is None:
            continue
        users = [n for n in graph.nodes if sqrt.outputs[0] in n.inputs]
        if len(users) != 1 or sqrt.outputs[0] in graph.outputs:
            continue
        last, absorbed = None, [square, mean, add, sqrt]
        step = users[0]
        if step.op == "Div" and step.inputs[1] is sqrt.outputs[0] and step.inputs[0] is x:
            last = step
        elif step.op in ("Reciprocal", "Div") and (step.op == "Reciprocal"
                                                    or _const_scalar(step.input(0), 1.0)):
            mul = only(step.outputs[0], "Mul")
            if mul is not None and _other_input(mul, step.outputs[0]) is x:
                absorbed.append(step)
                last = mul
        if last is None:
            continue
        absorbed.append(last)
        centred = producers.get(x)
        layer = centred is not None and centred.op == "Sub" and centred not in removed \
            and _reduce_last_axis(producers.get(centred.inputs[1]) or Node("", [], []),
                                  graph.opset) \
            and producers[centred.inputs[1]].inputs[0] is centred.inputs[0] \
            and len(consumers.get(producers[centred.inputs[1]].outputs[0], ())) == 1 \
            and {id(n) for n in consumers.get(x, ())} == {id(square), id(last)} \
            and x not in graph.outputs
        if layer:
            absorbed += [producers[centred.inputs[1]], centred]
            source = centred.inputs[0]
        else:
            source = x
        out = last
        weight = only(out.outputs[0], "Mul")
        scale = _other_input(weight, out.outputs[0]) if weight is not None else None
        if scale is not None and _is_const(scale) and np.ndim(scale.data) <= 1:
            absorbed.append(weight)
            out = weight
        else:
            scale = None
        bias = None
        if layer and scale is not None:
            shift = only(out.outputs[0], "Add")
            other = _other_input(shift, out.outputs[0]) if shift is not None else None
            if other is not None and _is_const(other) and np.ndim(other.data) <= 1:
                absorbed.append(shift)
                out, bias = shift, other
        if scale is None:
            scale = Value(source.name + "/norm_ones", (1,), np.dtype(np.float32),
                          np.ones(1, np.float32))
            graph.values[scale.name] = scale
        op = "LayerNormalization" if layer else "RMSNormalization"
        inputs = [source, scale] + ([bias] if bias is not None else [])
        fused = Node(op, inputs, [out.outputs[0]], {"axis": -1, "epsilon": eps},
                     (mean.name or "norm") + "/" + op, "")
        graph.nodes[graph.nodes.index(out)] = fused
        removed.update(n for n in absorbed if n is not out)
    graph.nodes = [n for n in graph.nodes if n not in removed]
    return graph


def constant_nodes(graph: Graph) -> Graph:
    """Constant nodes, and nodes all of whose inputs are constant (the
    exporters' shape and pad arithmetic), become constant values, so that
    the patterns below see them (the planner would fold them anyway)."""
    kept = []
    for node in graph.nodes:
        present = [v for v in node.inputs if v is not None and v.name]
        if node.op != "Constant" and present and all(v.is_const for v in present) \
                and not node.domain and node.op not in NEVER_FOLD \
                and node.epilogue is None and node.body is None \
                and not any(k.startswith("_") for k in node.attrs):
            try:
                results = evaluate(node, graph.opset)
            except Exception:   # left to the planner, whose error names the node
                kept.append(node)
                continue
            for value, data in zip(node.outputs, results):
                data = np.asarray(data)
                value.data, value.shape, value.dtype = data, tuple(data.shape), data.dtype
            continue
        if node.op == "Constant" and not node.domain and len(node.outputs) == 1:
            try:
                data = np.asarray(evaluate(node, graph.opset)[0])
            except Exception:   # left to the planner, whose error names the node
                kept.append(node)
                continue
            value = node.outputs[0]
            value.data, value.shape, value.dtype = data, tuple(data.shape), data.dtype
            continue
        kept.append(node)
    graph.nodes = kept
    return graph


def _pad_amounts(pad: Node, opset: int):
    """(pads, value) of a constant-mode Pad known at load, else None."""
    if pad.attrs.get("mode", "constant") not in ("constant", b"constant"):
        return None
    if opset < 11:
        return list(pad.attrs.get("pads") or []), float(pad.attrs.get("value", 0.0))
    if not _is_const(pad.input(1)) or (pad.input(3) is not None and pad.input(3).name):
        return None
    value = pad.input(2)
    fill = 0.0
    if value is not None and value.name:
        if not _is_const(value) or np.size(value.data) != 1:
            return None
        fill = float(np.asarray(value.data).reshape(-1)[0])
    return [int(p) for p in np.asarray(pad.inputs[1].data).reshape(-1)], fill


def fold_pad_into_conv(graph: Graph) -> Graph:
    """A zero Pad of a conv's spatial dims only (a causal 1-D conv, explicit
    'same' padding) becomes the conv's own pads: no copy."""
    consumers = graph.consumers()
    removed = set()
    for pad in graph.nodes:
        if pad.op != "Pad" or pad.domain:
            continue
        conv = _single_consumer(graph, pad.outputs[0], consumers)
        if conv is None or conv.op != "Conv" or conv.inputs[0] is not pad.outputs[0] \
                or conv.attrs.get("auto_pad", "NOTSET") not in ("NOTSET", b"NOTSET"):
            continue
        amounts = _pad_amounts(pad, graph.opset)
        if amounts is None or amounts[1] != 0.0 or len(amounts[0]) < 6 \
                or len(amounts[0]) % 2:
            continue
        pads, rank = amounts[0], len(amounts[0]) // 2
        begin, end = pads[:rank], pads[rank:]
        spatial = rank - 2
        old = list(conv.attrs.get("pads") or [0] * 2 * spatial)
        if any(p < 0 for p in pads) or begin[:2] != [0, 0] or end[:2] != [0, 0] \
                or len(old) != 2 * spatial:
            continue
        conv.attrs["pads"] = [old[i] + begin[2 + i] for i in range(spatial)] + \
            [old[spatial + i] + end[2 + i] for i in range(spatial)]
        conv.inputs = [pad.inputs[0]] + list(conv.inputs[1:])
        removed.add(pad)
    graph.nodes = [n for n in graph.nodes if n not in removed]
    return graph


def batchnorm_as_affine(graph: Graph) -> Graph:
    """An inference BatchNorm that no conv took (DenseNet's and pre-activation
    ResNets' BN -> ReLU -> Conv) becomes x * scale + shift, which the
    elementwise chains then fuse with the activation after it."""
    nodes = []
    for node in graph.nodes:
        x = node.inputs[0] if node.inputs else None
        params = node.inputs[1:5]
        if node.op != "BatchNormalization" or node.domain or len(node.outputs) != 1 \
                or node.attrs.get("training_mode", 0) or len(params) != 4 \
                or x is None or x.shape is None or len(x.shape) < 2 \
                or not all(_is_const(v) and np.ndim(v.data) == 1 for v in params) \
                or len({np.size(v.data) for v in params}) != 1:
            nodes.append(node)
            continue
        scale, shift = node_batchnorm_affine(node)
        shape = (scale.size,) + (1,) * (len(x.shape) - 2)
        name = node.name or node.outputs[0].name
        values = []
        for tag, data in (("scale", scale), ("shift", shift)):
            value = Value(f"{name}/bn_{tag}", shape, np.dtype(np.float32), data.reshape(shape))
            graph.values[value.name] = value
            values.append(value)
        mid = Value(f"{name}/bn_scaled", x.shape, x.dtype)
        graph.values[mid.name] = mid
        nodes += [Node("Mul", [x, values[0]], [mid], {}, name + "/bn_mul"),
                  Node("Add", [mid, values[1]], [node.outputs[0]], {}, name + "/bn_add")]
    graph.nodes = nodes
    return graph


def attach_activations(graph: Graph) -> Graph:
    """An activation node the chains revealed (name_activations) joins the
    epilogue of the Conv/Gemm/MatMul before it."""
    consumers = graph.consumers()
    removed = set()
    for node in graph.nodes:
        if node.op not in ("Conv", "Gemm", "MatMul") or node in removed \
                or (node.epilogue is not None and node.epilogue.act):
            continue
        nxt = _single_consumer(graph, node.outputs[0], consumers)
        act = _activation_params(nxt, graph.opset) if nxt is not None else None
        if act is None:
            continue
        node.epilogue = replace(node.epilogue or Epilogue(), act=act)
        node.outputs = [nxt.outputs[0]]
        removed.add(nxt)
    graph.nodes = [n for n in graph.nodes if n not in removed]
    return graph


def optimize(graph: Graph) -> Graph:
    """The load-time passes that need no shapes, in order."""
    graph = constant_nodes(graph)
    graph = fold_pad_into_conv(graph)
    graph = fold_batchnorm(graph)
    graph = batchnorm_as_affine(graph)
    graph = fuse_gelu(graph)
    graph = fuse_norms(graph)
    graph = fuse_epilogues(graph)
    graph = fuse_movement(graph)
    graph = fuse_matmul_views(graph)
    graph = fuse_elementwise(graph)
    return attach_activations(name_activations(graph))
