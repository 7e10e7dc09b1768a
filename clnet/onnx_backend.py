"""The onnx.backend.base.Backend API, so ONNX's backend test suite runs on clnet.

    import clnet.onnx_backend as backend
    rep = backend.prepare(model_proto, device="CPU")
    outputs = rep.run([x])
"""
from __future__ import annotations

import os

import numpy as np
import onnx
from onnx.backend.base import Backend, BackendRep

from .errors import ClnetError
from .runtime import InferenceSession


# (op, input index) of arguments clnet must know when it plans (shapes, axes,
# counts).  ONNX's node tests pass them as graph inputs; the backend then
# plans the model once per distinct value of those inputs, as constants.
SHAPE_ARGUMENTS = {
    ("Reshape", 1), ("Expand", 1), ("Tile", 1), ("Squeeze", 1), ("Unsqueeze", 1),
    ("Slice", 1), ("Slice", 2), ("Slice", 3), ("Slice", 4), ("Pad", 1), ("Pad", 3),
    ("Split", 1), ("TopK", 1), ("CumSum", 1), ("ConstantOfShape", 0), ("Range", 0),
    ("Range", 1), ("Range", 2), ("OneHot", 1), ("Trilu", 1), ("Resize", 3),
    ("Upsample", 1), ("CenterCropPad", 1), ("ReduceSum", 1), ("ReduceMean", 1),
    ("ReduceMax", 1), ("ReduceMin", 1), ("ReduceProd", 1), ("ReduceL1", 1),
    ("ReduceL2", 1), ("ReduceLogSum", 1), ("ReduceLogSumExp", 1), ("ReduceSumSquare", 1),
}


def shape_argument_inputs(model) -> list:
    """Names of graph inputs used directly as a shape-like argument."""
    graph_inputs = {i.name for i in model.graph.input}
    found = []
    for node in model.graph.node:
        for index, name in enumerate(node.input):
            if name in graph_inputs and (node.op_type, index) in SHAPE_ARGUMENTS \
                    and name not in found:
                found.append(name)
    return found


def _specialise(model, values: dict):
    """A copy of `model` with the given graph inputs turned into initializers."""
    from onnx import numpy_helper

    copy = onnx.ModelProto()
    copy.CopyFrom(model)
    kept = [i for i in copy.graph.input if i.name not in values]
    del copy.graph.input[:]
    copy.graph.input.extend(kept)
    copy.graph.initializer.extend(numpy_helper.from_array(np.asarray(v), n)
                                  for n, v in values.items())
    return copy


class ClnetRep(BackendRep):
    def __init__(self, session: InferenceSession = None, model=None, make_session=None):
        self.session = session
        self._model = model
        self._make = make_session
        self._names = [i.name for i in model.graph.input] if model is not None else None
        self._special = shape_argument_inputs(model) if model is not None else []
        self._sessions: dict = {}

    def run(self, inputs, **kwargs):
        names = self._names or [i.name for i in self.session.get_inputs()]
        if isinstance(inputs, dict):
            feed = dict(inputs)
        else:
            if isinstance(inputs, np.ndarray):
                inputs = [inputs]
            feed = dict(zip(names, inputs))
        session = self.session
        if self._special:
            values = {n: np.asarray(feed.pop(n)) for n in self._special if n in feed}
            key = tuple((n, v.dtype.str, v.shape, v.tobytes()) for n, v in values.items())
            session = self._sessions.get(key)
            if session is None:
                session = self._make(_specialise(self._model, values))
                self._sessions[key] = session
        return tuple(session.run(None, feed))


class ClnetBackend(Backend):
    @classmethod
    def is_compatible(cls, model, device: str = "CPU", **kwargs) -> bool:
        try:
            from .frontend.onnx import check_supported, to_graph
            check_supported(to_graph(model))
            return True
        except ClnetError:
            return False

    @classmethod
    def prepare(cls, model, device: str = "CPU", **kwargs):
        super().prepare(model, device, **kwargs)
        selector = os.environ.get("CLNET_DEVICE") or None
        precision = kwargs.get("precision", "fp32")

        def make_session(proto):
            return InferenceSession(proto, device=selector, precision=precision)

        if shape_argument_inputs(model):
            return ClnetRep(model=model, make_session=make_session)
        return ClnetRep(make_session(model))

    @classmethod
    def run_model(cls, model, inputs, device: str = "CPU", **kwargs):
        return cls.prepare(model, device, **kwargs).run(inputs)

    @classmethod
    def run_node(cls, node, inputs, device: str = "CPU", outputs_info=None, **kwargs):
        raise NotImplementedError("clnet runs whole models; use run_model")

    @classmethod
    def supports_device(cls, device: str) -> bool:
        # The suite asks per device; clnet answers for "CPU", meaning whatever
        # OpenCL device CLNET_DEVICE (or the automatic choice) selects.
        return device == "CPU"


prepare = ClnetBackend.prepare
run_model = ClnetBackend.run_model
run_node = ClnetBackend.run_node
supports_device = ClnetBackend.supports_device
is_compatible = ClnetBackend.is_compatible
