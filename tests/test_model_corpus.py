"""A few small families of tools/model_corpus.py match onnxruntime through clnet.

They cover what tests/test_torch_families.py does not: GridSample warping
and MatMul correlation (flownet), torch's LSTM behind a convolutional STFT
(lstm_vad), a decode step with rotary embeddings, RMSNorm, grouped KV heads
and the cache as inputs (llama_decode), T5's bucketed relative position bias
(t5_encoder).  Skipped where torch is not installed."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
ort = pytest.importorskip("onnxruntime")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tools"))
import model_corpus  # noqa: E402

FAMILIES = ["flownet", "lstm_vad", "llama_decode", "t5_encoder"]
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning",
                                        "ignore::torch.jit.TracerWarning", "ignore::UserWarning")


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    return tmp_path_factory.mktemp("model_corpus")


def test_families_are_registered():
    names = model_corpus.family_names()
    assert len(names) >= 26 and len(set(names)) == len(names)
    assert set(names) == set(model_corpus.builders())


@pytest.mark.parametrize("name", FAMILIES)
def test_family_matches_onnxruntime(device, cache, name):
    path, feeds = model_corpus.export(name, cache)
    assert model_corpus.export(name, cache)[0] == path          # cached, not re-exported
    err = model_corpus.compare(path, feeds, device)
    assert err <= 1e-4, f"{name}: max |diff| {err:.2e} x max |onnxruntime|"
