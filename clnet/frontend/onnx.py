"""ONNX file -> clnet Graph.

Uses the ``onnx`` package to parse, check and infer shapes; we never parse
protobuf by hand.  Everything wrong with a file becomes a ``ModelError``
that says what is wrong; every op clnet cannot run is listed at once in an
``UnsupportedOpError``.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Union

import numpy as np
import onnx
from onnx import helper, numpy_helper

from ..errors import ModelError, UnsupportedOpError
from ..graph import Graph, Node, Value
from ..subgraph import Subgraph, free_names
from .validate import check_graph, check_output_dtypes, check_versions

DEFAULT_DOMAINS = ("", "ai.onnx")


def read_model(model: Union[str, os.PathLike, bytes, "onnx.ModelProto"]) -> tuple:
    """(ModelProto, base folder for external data or None, the file's bytes or None)."""
    if isinstance(model, onnx.ModelProto):
        return model, None, None
    if isinstance(model, (bytes, bytearray, memoryview)):
        data, base, where = bytes(model), None, "the given bytes"
    else:
        path = Path(model)
        if not path.is_file():
            raise ModelError(f"model file {str(path)!r} does not exist")
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise ModelError(f"cannot read model file {str(path)!r}: {exc}") from None
        base, where = path.resolve().parent, repr(str(path))
    if not data:
        raise ModelError(f"{where} is empty, not an ONNX model")
    try:
        proto = onnx.load_model_from_string(data)
    except Exception as exc:  # protobuf raises DecodeError and friends
        raise ModelError(f"{where} is not a valid ONNX model (truncated or another format): "
                         f"{type(exc).__name__}: {exc}") from None
    if not proto.HasField("graph") or not proto.graph.node and not proto.graph.output:
        raise ModelError(f"{where} parses but holds no ONNX graph (is it an ONNX file?)")
    return proto, base, data


def load_external_data(proto: "onnx.ModelProto", base) -> bool:
    """Read the tensors' external data files (only from inside `base`);
    whether the model had any."""
    from onnx.external_data_helper import _get_all_tensors, uses_external_data

    tensors = [t for t in _get_all_tensors(proto) if uses_external_data(t)]
    if not tensors:
        return False
    if base is None:
        raise ModelError("the model refers to external data files; load it from its path, "
                         "not from bytes")
    for tensor in tensors:
        info = {e.key: e.value for e in tensor.external_data}
        location = info.get("location", "")
        if "\0" in location or not location:
            raise ModelError(f"initializer {tensor.name!r}: external data location "
                             f"{location!r} is not a file name")
        target = (base / location).resolve()
        if Path(location).is_absolute() or base not in target.parents:
            raise ModelError(f"initializer {tensor.name!r}: external data path {location!r} "
                             f"leaves the model's folder; refusing to read it")
        if not target.is_file():
            raise ModelError(f"initializer {tensor.name!r}: external data file {location!r} "
                             f"is missing")
    try:
        onnx.load_external_data_for_model(proto, str(base))
    except Exception as exc:
        raise ModelError(f"cannot load external data: {exc}") from None
    return True


def _opset(proto: "onnx.ModelProto") -> int:
    for entry in proto.opset_import:
        if entry.domain in DEFAULT_DOMAINS:
            return int(entry.version)
    return 1


def _dtype(elem_type: int):
    if elem_type == onnx.TensorProto.UNDEFINED:
        return None
    try:
        return np.dtype(helper.tensor_dtype_to_np_dtype(elem_type))
    except (KeyError, TypeError, ValueError):
        return None


def _value_info_shape(info) -> tuple:
    """(shape, dtype) of a ValueInfoProto; symbolic dims are their names or None."""
    ttype = info.type.tensor_type
    if not info.type.HasField("tensor_type"):
        return None, None
    shape = None
    if ttype.HasField("shape"):
        shape = tuple(_dim(d) for d in ttype.shape.dim)
    return shape, _dtype(ttype.elem_type)


FREE_SYMBOLS = ("", "?")   # dim_params meaning "unknown", not a name shared between dims


def _dim(dim):
    """One declared dim: an int, a symbol's name, or None when free.  A
    negative dim_value (PaddleOCR exports write -1) is free, as onnxruntime
    reads it, and so is "?" (PaddleOCR writes [-1, 3, ?, ?] for any height
    and width, not for equal ones)."""
    if dim.HasField("dim_value"):
        return dim.dim_value if dim.dim_value >= 0 else None
    return None if dim.dim_param in FREE_SYMBOLS else dim.dim_param


def attribute_value(attr):
    """An AttributeProto's value: strings decoded, tensors as numpy arrays."""
    value = helper.get_attribute_value(attr)
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if isinstance(value, onnx.TensorProto):
        return numpy_helper.to_array(value)
    if isinstance(value, list) and value and isinstance(value[0], bytes):
        return [v.decode("utf-8", "replace") for v in value]
    return value


def to_graph(proto: "onnx.ModelProto", inferred: list = ()) -> Graph:
    """Convert a checked ModelProto to a Graph (no shape inference here)."""
    opset = _opset(proto)
    g = proto.graph
    values: dict = {}

    def value(name: str) -> Value:
        if name not in values:
            values[name] = Value(name)
        return values[name]

    for init in g.initializer:
        try:
            data = numpy_helper.to_array(init)
        except Exception as exc:
            raise ModelError(f"initializer {init.name!r} (data type {init.data_type}, dims "
                             f"{list(init.dims)}) cannot be read: {type(exc).__name__}: "
                             f"{exc}") from None
        v = value(init.name)
        v.data, v.shape, v.dtype = data, tuple(data.shape), data.dtype
    for info in list(g.input) + list(g.value_info) + list(inferred) + list(g.output):
        v = value(info.name)
        if v.is_const:
            continue
        shape, dtype = _value_info_shape(info)
        if v.shape is None:
            v.shape = shape
        if v.dtype is None:
            v.dtype = dtype
    # graph inputs that an initializer also names are constants with a default
    initialized = {init.name for init in g.initializer}
    inputs = [value(i.name) for i in g.input if i.name not in initialized]
    nodes = []
    for index, n in enumerate(g.node):
        attrs = {a.name: attribute_value(a) for a in n.attribute}
        ins = [value(name) if name else None for name in n.input]
        outs = [value(name) if name else Value("") for name in n.output]
        nodes.append(Node(n.op_type, ins, outs, attrs, n.name or f"{n.op_type}_{index}",
                          n.domain if n.domain not in DEFAULT_DOMAINS else ""))
    outputs = [value(o.name) for o in g.output]
    graph = Graph(nodes, inputs, outputs, opset, g.name, values)
    attach_subgraphs(graph, proto.opset_import)
    return graph


def attach_subgraphs(graph: Graph, opset_imports) -> None:
    """Convert GraphProto attributes of `graph`'s nodes to Subgraphs (in place)."""
    for node in graph.nodes:
        protos = {k: v for k, v in node.attrs.items() if isinstance(v, onnx.GraphProto)}
        if not protos:
            continue
        names: list = []
        for key, proto in protos.items():
            model = helper.make_model(proto, opset_imports=list(opset_imports))
            sub = to_graph(model)
            outer = free_names(sub)
            node.attrs[key] = Subgraph(sub, tuple(outer))
            names += [n for n in outer if n not in names]
        node.attrs["_n_inputs"] = len(node.inputs)
        node.attrs["_outer_names"] = tuple(names)   # copies may rename the inputs
        for name in names:
            if name not in graph.values:
                graph.values[name] = Value(name)
            node.inputs.append(graph.values[name])


def host_computable(graph: Graph) -> set:
    """Values known at load time: constants, shapes, and anything computed
    only from those (shape arithmetic).  Nodes producing them are folded by
    the ONNX reference at planning time, so they need no device kernel."""
    from ..passes.fold import NEVER_FOLD

    known = {v for v in graph.values.values() if v.is_const}
    for node in graph.nodes:
        present = [v for v in node.inputs if v is not None]
        if node.op in ("Shape", "Size") or (node.op not in NEVER_FOLD
                                            and all(v in known for v in present)):
            known.update(node.outputs)
    return known


def check_supported(graph: Graph) -> None:
    """Raise UnsupportedOpError listing every node clnet cannot run."""
    from ..ops import lookup

    known = host_computable(graph)
    bad = []
    for node in graph.nodes:
        if lookup(node.op, graph.opset, node.domain) is not None:
            bad += _unsupported_in_subgraphs(node)
            continue
        if all(v in known for v in node.outputs):
            continue
        domain = f" (domain {node.domain!r})" if node.domain else ""
        bad.append(f"node {node.name!r}: {node.op}{domain}")
    if bad:
        raise UnsupportedOpError(f"{len(bad)} node(s) use ops not supported at opset "
                                 f"{graph.opset}: " + "; ".join(bad))


def _unsupported_in_subgraphs(node) -> list:
    """'node ...: Op' entries for unsupported ops inside `node`'s subgraphs."""
    from ..ops import lookup

    bad = []
    for sub in (v for v in node.attrs.values() if isinstance(v, Subgraph)):
        known = host_computable(sub.graph)
        for inner in sub.graph.nodes:
            if lookup(inner.op, sub.graph.opset, inner.domain) is None:
                if all(v in known for v in inner.outputs):
                    continue
                bad.append(f"node {inner.name!r} (in {node.name!r}): {inner.op}")
            else:
                bad += _unsupported_in_subgraphs(inner)
    return bad


def _for_checker(proto: "onnx.ModelProto") -> "onnx.ModelProto":
    """The checker insists on a shape for graph inputs/outputs, which exporters
    (and onnxruntime) treat as optional: check a copy with unknown-rank
    outputs given a placeholder shape instead of rejecting the model."""
    shapeless = [v for v in list(proto.graph.input) + list(proto.graph.output)
                 if v.type.HasField("tensor_type") and not v.type.tensor_type.HasField("shape")]
    if not shapeless:
        return proto
    copy = onnx.ModelProto()
    copy.CopyFrom(proto)
    for v in list(copy.graph.input) + list(copy.graph.output):
        if v.type.HasField("tensor_type") and not v.type.tensor_type.HasField("shape"):
            v.type.tensor_type.shape.SetInParent()
    return copy


def _inferred_value_info(proto: "onnx.ModelProto") -> tuple:
    """(value_info, graph outputs) of ONNX shape inference on a copy without
    the large initializers' data, the outputs' declared types left out (so
    that inference says what the graph computes).

    Only shapes and dtypes are wanted, and serialising tens of megabytes of
    weights for the C++ inferencer dominated load time; small initializers
    (shape arguments) keep their data because inference reads them.
    """
    light = onnx.ModelProto()
    light.ir_version = proto.ir_version
    light.opset_import.extend(proto.opset_import)
    light.functions.extend(proto.functions)
    g = proto.graph
    lg = light.graph
    lg.name = g.name
    lg.node.extend(g.node)
    lg.input.extend(g.input)
    lg.output.extend(onnx.ValueInfoProto(name=o.name) for o in g.output)
    lg.value_info.extend(g.value_info)
    for init in g.initializer:
        if _elements(init) <= 4096:
            lg.initializer.append(init)
            continue
        stub = lg.initializer.add()
        stub.name, stub.data_type = init.name, init.data_type
        stub.dims.extend(init.dims)
    try:
        inferred = onnx.shape_inference.infer_shapes(light).graph
        return list(inferred.value_info), list(inferred.output)
    except Exception:
        return [], []  # our own shape rules run at planning time anyway


def _elements(tensor) -> int:
    count = 1
    for dim in tensor.dims:
        count *= dim
    return count


def load_model(model) -> Graph:
    """Read, check and convert an ONNX model (path, bytes or ModelProto)."""
    proto, base, data = read_model(model)
    check_versions(proto)
    if load_external_data(proto, base):
        data = None
    checked = _for_checker(proto)
    try:
        # the file's own bytes when they are what we check: no re-serialising
        onnx.checker.check_model(data if checked is proto and data is not None else checked)
    except onnx.checker.ValidationError as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else "invalid model"
        raise ModelError(f"the model fails ONNX validation: {first}") from None
    except Exception as exc:  # e.g. models over 2 GB without a path
        raise ModelError(f"the model cannot be checked: {exc}") from None
    value_info, outputs = _inferred_value_info(proto)
    graph = to_graph(proto, value_info)
    check_supported(graph)
    check_output_dtypes(graph, list(proto.graph.output), outputs)
    _check_topological(graph)
    check_graph(graph)
    return graph


def _check_topological(graph: Graph) -> None:
    known = {v for v in graph.values.values() if v.is_const} | set(graph.inputs)
    for node in graph.nodes:
        for value in node.inputs:
            if value is not None and value not in known:
                raise ModelError(f"{node.label()}: input {value.name!r} is used before it is "
                                 f"produced (graph not in topological order, or a dangling "
                                 f"name)")
        known.update(node.outputs)
    for value in graph.outputs:
        if value not in known:
            raise ModelError(f"graph output {value.name!r} is produced by no node")
