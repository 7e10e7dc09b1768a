"""The onnx.backend.base.Backend API, so ONNX's backend test suite runs on clnet.

    import clnet.onnx_backend as backend
    rep = backend.prepare(model_proto, device="CPU")
    outputs = rep.run([x])
"""
from __future__ import annotations

import os

import numpy as np
from onnx.backend.base import Backend, BackendRep

from .errors import ClnetError
from .runtime import InferenceSession


class ClnetRep(BackendRep):
    def __init__(self, session: InferenceSession):
        self.session = session

    def run(self, inputs, **kwargs):
        names = [i.name for i in self.session.get_inputs()]
        if isinstance(inputs, dict):
            feed = dict(inputs)
        else:
            if isinstance(inputs, np.ndarray):
                inputs = [inputs]
            feed = dict(zip(names, inputs))
        return tuple(self.session.run(None, feed))


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
        return ClnetRep(InferenceSession(model, device=selector, precision=precision))

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
