"""Graph -> Graph rewrites that need no shapes and no device; ``optimize``
runs them all in order (load.py, patterns.py, chains.py hold the rest).

* ``fold_batchnorm``: Conv followed by inference BatchNormalization becomes
  one Conv with rescaled weights and bias.
* ``fuse_epilogues``: a residual Add and/or an activation (or x * sigmoid(x))
  right after a Conv/Gemm/MatMul become that node's ``epilogue``
  (graph.Epilogue), run in the GEMM's epilogue; so does a constant [N] bias
  Add after a MatMul with constant B (``bias``, the bias becoming its third
  input), and a Mul or Div by a 0-d constant right after a MatMul
  (``alpha``, the GEMM's alpha: attention's scores / sqrt(d)).  The
  lowering falls back to separate launches when the shapes turn out not to
  allow it.
* ``attach_activations``: an activation the chains revealed joins the
  epilogue of the GEMM before it.
"""
from __future__ import annotations

from dataclasses import replace

import numpy as np

from ..graph import EPILOGUE_ACTIVATIONS, Epilogue, Graph, Node, Value
from .batchnorm import node_batchnorm_affine
from .chains import fuse_elementwise, fuse_matmul_views, fuse_movement, name_activations
from .load import batchnorm_as_affine, constant_nodes, fold_pad_into_conv
from .match import is_const, other_input, single_consumer
from .patterns import fuse_gelu, fuse_norms


def fold_batchnorm(graph: Graph) -> Graph:
    consumers = graph.consumers()
    removed = set()
    for node in graph.nodes:
        if node.op != "Conv" or node in removed or not is_const(node.input(1)):
            continue
        bn = single_consumer(graph, node.outputs[0], consumers)
        if bn is None or bn.op != "BatchNormalization" or bn.attrs.get("training_mode", 0):
            continue
        if len(bn.outputs) > 1 or not all(is_const(v) for v in bn.inputs[1:5]):
            continue
        if node.input(2) is not None and node.input(2).name and not is_const(node.input(2)):
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
    return is_const(weight) and group > 1 and weight.data.shape[1] == 1


def _matmul_bias(node: Node, add: Node) -> bool:
    """Whether `add` adds a constant [N] vector to MatMul `node` (B constant, 2-D+).

    On success the bias becomes the MatMul's third input.
    """
    b = node.inputs[1]
    if add.op != "Add" or len(add.inputs) != 2 or not is_const(b) or b.data is None:
        return False
    if np.ndim(b.data) < 2:
        return False
    other = add.inputs[1] if add.inputs[0] is node.outputs[0] else add.inputs[0]
    if other is node.outputs[0] or not is_const(other) or other.data is None:
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
        nxt = single_consumer(graph, node.outputs[0], consumers)
        if nxt in removed:  # already absorbed by another producer
            continue
        epilogue = None   # what this node absorbs, built up below
        scale = _const_scale(node, nxt) if node.op == "MatMul" and nxt is not None else None
        if scale is not None:   # attention's scores / sqrt(d): the GEMM's alpha
            epilogue = replace(epilogue or Epilogue(), alpha=scale)
            node.outputs = [nxt.outputs[0]]
            removed.add(nxt)
            moves[node] = order[nxt]
            nxt = single_consumer(graph, node.outputs[0], consumers)
        if nxt is not None and node.op == "MatMul" and _matmul_bias(node, nxt):
            epilogue = replace(epilogue or Epilogue(), bias=True)
            node.outputs = [nxt.outputs[0]]
            removed.add(nxt)
            moves[node] = order[nxt]
            nxt = single_consumer(graph, node.outputs[0], consumers)
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
                nxt = single_consumer(graph, node.outputs[0], consumers)
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
    if sig is None or mul is None or other_input(mul, x) is not sig.outputs[0]:
        return None
    if single_consumer(graph, sig.outputs[0], consumers) is not mul:
        return None
    return sig, mul


def _const_scale(node: Node, nxt: Node):
    """The factor s when `nxt` is a Mul by, or a Div by, a 0-d float constant
    (x * s, s * x or x / s, s finite and nonzero), else None."""
    if nxt.op not in ("Mul", "Div") or len(nxt.inputs) != 2:
        return None
    other = other_input(nxt, node.outputs[0])
    if other is None or (nxt.op == "Div" and nxt.inputs[1] is not other):
        return None
    # a 0-d constant: one of shape [1] would turn a 0-d product into shape [1]
    if not is_const(other) or other.data is None or np.ndim(other.data) != 0 \
            or np.asarray(other.data).dtype.kind != "f":
        return None
    s = float(np.asarray(other.data).reshape(-1)[0])
    if not np.isfinite(s) or s == 0.0:
        return None
    return 1.0 / s if nxt.op == "Div" else s


def attach_activations(graph: Graph) -> Graph:
    """An activation node the chains revealed (name_activations) joins the
    epilogue of the Conv/Gemm/MatMul before it."""
    consumers = graph.consumers()
    removed = set()
    for node in graph.nodes:
        if node.op not in ("Conv", "Gemm", "MatMul") or node in removed \
                or (node.epilogue is not None and node.epilogue.act):
            continue
        nxt = single_consumer(graph, node.outputs[0], consumers)
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
