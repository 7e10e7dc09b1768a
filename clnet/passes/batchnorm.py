"""Inference BatchNormalization as a per-channel affine map.

y = (x - mean) / sqrt(var + eps) * gamma + beta = x * scale + shift, with
scale = gamma / sqrt(var + eps) and shift = beta - mean * scale.  Folding a
BatchNorm into the Conv/Gemm before it (``clnet optimize`` on the ONNX file,
the load-time passes on the IR) and lowering a lone BatchNorm all use this.
"""
from __future__ import annotations

import numpy as np

DEFAULT_EPSILON = 1e-5     # ONNX's default for the epsilon attribute


def batchnorm_affine(gamma, beta, mean, var, epsilon: float = DEFAULT_EPSILON) -> tuple:
    """(scale, shift) per channel, computed in float64."""
    gamma, beta, mean, var = (np.asarray(v, dtype=np.float64) for v in (gamma, beta, mean, var))
    scale = gamma / np.sqrt(var + epsilon)
    return scale, beta - mean * scale


def node_batchnorm_affine(node) -> tuple:
    """(scale, shift) as float32 of an IR BatchNormalization node whose
    gamma, beta, mean and var are constants."""
    scale, shift = batchnorm_affine(*(v.data for v in node.inputs[1:5]),
                                    node.attrs.get("epsilon", DEFAULT_EPSILON))
    return scale.astype(np.float32), shift.astype(np.float32)
