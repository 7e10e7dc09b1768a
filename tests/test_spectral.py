"""DFT on the device (forward, inverse, one-sided, inverse one-sided,
dft_length padding and truncation, axis as attribute (opset 17) and as a
run-time input (opset 20), real and complex input) checked against numpy's
FFT in both storage modes; window ops against the ONNX reference."""
from __future__ import annotations

import numpy as np
import pytest
from onnx import helper

from conftest import assert_close, reference
from test_gather import make_model

RNG = np.random.default_rng(17)


def run(device, precision, model, feeds):
    import clnet

    session = clnet.InferenceSession(model.SerializeToString(), device=device,
                                     precision=precision)
    return session.run(None, feeds)


def as_pairs(z: np.ndarray) -> np.ndarray:
    return np.stack([z.real, z.imag], axis=-1).astype(np.float32)


def dft_model(opset: int, axis: int, length=None, **attrs):
    inputs = ["x", "n" if length is not None else ""]
    if opset >= 20:
        inputs.append("axis")
    else:
        attrs["axis"] = axis
    return helper.make_node("DFT", inputs, ["y"], **attrs)


@pytest.mark.parametrize("opset", [17, 20])
@pytest.mark.parametrize("complex_input", [False, True])
@pytest.mark.parametrize("axis", [1, 2, -2])
def test_dft_forward(device, precision, opset, complex_input, axis):
    shape = (3, 13, 5)
    z = RNG.standard_normal(shape) + (1j * RNG.standard_normal(shape) if complex_input else 0)
    x = as_pairs(z) if complex_input else z.real[..., None].astype(np.float32)
    feeds = {"x": x}
    if opset >= 20:
        feeds["axis"] = np.array(axis, np.int64)
    model = make_model([dft_model(opset, axis)], feeds, opset=opset)
    want = as_pairs(np.fft.fft(z, axis=axis % x.ndim))   # counted on the rank-4 input
    assert_close(run(device, precision, model, feeds), [want], precision)


@pytest.mark.parametrize("length", [7, 13, 16])
def test_dft_onesided_and_length(device, precision, length):
    """dft_length shorter than the signal truncates it, longer zero-pads it."""
    x = RNG.standard_normal((2, 13, 1)).astype(np.float32)
    feeds = {"x": x, "axis": np.array(1, np.int64)}
    model = make_model([dft_model(20, 1, length, onesided=1)], feeds,
                       {"n": np.array(length, np.int64)}, opset=20)
    want = as_pairs(np.fft.rfft(x[..., 0].astype(np.float64), n=length, axis=1))
    assert_close(run(device, precision, model, feeds), [want], precision)


@pytest.mark.parametrize("length", [None, 13])
def test_dft_inverse(device, precision, length):
    z = RNG.standard_normal((3, 13)) + 1j * RNG.standard_normal((3, 13))
    feeds = {"x": as_pairs(z)}
    inits = {} if length is None else {"n": np.array(length, np.int64)}
    model = make_model([dft_model(17, 1, length, inverse=1)], feeds, inits, opset=17)
    want = as_pairs(np.fft.ifft(z, n=length, axis=1))
    assert_close(run(device, precision, model, feeds), [want], precision)


@pytest.mark.parametrize("length", [None, 13])
def test_dft_inverse_onesided(device, precision, length):
    """irfft: bins 0..n/2 of a Hermitian spectrum give a real signal."""
    spectrum = np.fft.rfft(RNG.standard_normal((3, 12 if length is None else length)), axis=1)
    feeds = {"x": as_pairs(spectrum)}
    inits = {} if length is None else {"n": np.array(length, np.int64)}
    model = make_model([dft_model(17, 1, length, inverse=1, onesided=1)], feeds, inits,
                       opset=17)
    want = np.fft.irfft(spectrum, n=length, axis=1)[..., None].astype(np.float32)
    assert_close(run(device, precision, model, feeds), [want], precision)


def test_dft_rejects_bad_axis(device):
    import clnet

    feeds = {"x": RNG.standard_normal((2, 5, 1)).astype(np.float32)}
    model = make_model([dft_model(17, 2)], feeds, opset=17)
    with pytest.raises(clnet.errors.ClnetError, match="DFT axis 2"):
        run(device, "fp32", model, feeds)


@pytest.mark.parametrize("name", ["HannWindow", "HammingWindow", "BlackmanWindow"])
@pytest.mark.parametrize("periodic", [0, 1])
def test_windows(device, name, periodic):
    feeds = {"size": np.array(13, np.int64)}
    model = make_model([helper.make_node(name, ["size"], ["y"], periodic=periodic)],
                       feeds, opset=17)
    assert_close(run(device, "fp32", model, feeds), reference(model, feeds))


@pytest.mark.parametrize("with_window", [False, True])
@pytest.mark.parametrize("onesided", [0, 1])
@pytest.mark.parametrize("channels", [1, 2])
def test_stft(device, precision, with_window, onesided, channels):
    """Frames of 13 samples every 5 of a 127-sample signal, against numpy."""
    signal = RNG.standard_normal((2, 127, channels)).astype(np.float32)
    length, step = 13, 5
    window = np.hanning(length).astype(np.float32)
    feeds = {"x": signal}
    inits = {"step": np.array(step, np.int64)}
    inputs = ["x", "step", "", "n"]
    if with_window:
        inits["w"], inputs[2] = window, "w"
    inits["n"] = np.array(length, np.int64)
    node = helper.make_node("STFT", inputs, ["y"], onesided=onesided)
    model = make_model([node], feeds, inits, opset=17)
    z = signal[..., 0] + (1j * signal[..., 1] if channels == 2 else 0)
    frames = 1 + (127 - length) // step
    framed = np.stack([z[:, f * step:f * step + length] for f in range(frames)], axis=1)
    spectrum = np.fft.fft(framed * (window if with_window else 1.0), axis=-1)
    want = as_pairs(spectrum[..., :length // 2 + 1] if onesided else spectrum)
    assert_close(run(device, precision, model, feeds), [want], precision)
