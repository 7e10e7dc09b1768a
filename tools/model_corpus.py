"""A corpus of public model families for benchmarking clnet against onnxruntime.

Families are architectures written in torch (`model_corpus_cnn.py`,
`model_corpus_seq.py`) with seeded random weights and BatchNorm statistics
measured on the example input and then perturbed; each is exported once
with the TorchScript exporter (opset 17, batch 1, fixed shapes) into a cache
folder, with its inputs beside it as .npz.  `--wheels DIR` adds the .onnx
files shipped inside downloaded wheels (magika, silero-vad, rapidocr, ...),
fed from their declared input shapes and the KNOWN table below.

    python tools/model_corpus.py                       # export all, compare with onnxruntime
    python tools/model_corpus.py --only unet,gpt2 --wheels /tmp/wheels
    python tools/bench_models.py --corpus              # the timing run
"""
from __future__ import annotations

import argparse
import hashlib
import os
import sys
import zipfile
import zlib
from pathlib import Path

import numpy as np

SOURCES = [Path(__file__).with_name(n) for n in ("model_corpus_cnn.py", "model_corpus_seq.py")]
DYNAMO = ("bert_base", "gpt2", "vit_small")   # also tried with the dynamo exporter
OPSET = 17


def default_cache() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "clnet-corpus"


def builders() -> dict:
    """family name -> builder of (module, inputs, input names, output names)."""
    import model_corpus_cnn
    import model_corpus_seq
    return {**model_corpus_cnn.FAMILIES, **model_corpus_seq.FAMILIES}


def family_names() -> list:
    """Names without importing torch (read from the sources' decorators)."""
    names = []
    for src in SOURCES:
        lines = src.read_text(encoding="utf-8").splitlines()
        names += [lines[i + 1].split("(")[0][4:] for i, line in enumerate(lines)
                  if line == "@family"]
    return names


def _source_hash() -> str:
    digest = hashlib.sha256()
    for src in SOURCES:
        digest.update(src.read_bytes())
    return digest.hexdigest()[:10]


def calibrate(module, inputs) -> None:
    """Random BatchNorm affine weights and running statistics measured on the
    example input, layer by layer (so activations keep their scale through
    deep nets), then perturbed so that folding bugs would show."""
    import torch
    g = torch.Generator().manual_seed(2)

    def measure(norm, args):
        x = args[0].transpose(0, 1).flatten(1)         # channels x everything else
        if x.shape[1] > 1:
            norm.running_mean.copy_(x.mean(1))
            norm.running_var.copy_(x.var(1, unbiased=False))
        std = norm.running_var.sqrt()
        norm.running_mean.add_(torch.randn(norm.num_features, generator=g) * 0.1 * std)
        norm.running_var.mul_(torch.rand(norm.num_features, generator=g) * 0.5 + 0.75)

    module.eval()
    hooks = []
    with torch.no_grad():
        for m in module.modules():
            if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
                m.weight.copy_(torch.rand(m.num_features, generator=g) + 0.5)
                m.bias.copy_(torch.randn(m.num_features, generator=g) * 0.1)
                hooks.append(m.register_forward_pre_hook(measure))
        if hooks:
            module(*inputs)
    for hook in hooks:
        hook.remove()


def export(name: str, cache: Path, dynamo: bool = False) -> tuple:
    """(path of the exported .onnx, feeds); exported only when not cached."""
    folder = cache / _source_hash()
    path = folder / f"{name}{'_dynamo' if dynamo else ''}.onnx"
    feeds_path = path.with_suffix(".npz")
    if path.exists() and feeds_path.exists():
        return path, dict(np.load(feeds_path))
    import torch
    torch.manual_seed(zlib.crc32(name.encode()))
    module, inputs, in_names, out_names = builders()[name]()
    calibrate(module, inputs)
    folder.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    with torch.no_grad():
        if dynamo:
            torch.onnx.export(module, inputs, str(tmp), input_names=in_names,
                              output_names=out_names, opset_version=18, dynamo=True,
                              external_data=False)
        else:
            torch.onnx.export(module, inputs, str(tmp), input_names=in_names,
                              output_names=out_names, opset_version=OPSET, dynamo=False)
    feeds = {n: t.numpy() for n, t in zip(in_names, inputs)}
    np.savez(feeds_path, **feeds)
    tmp.replace(path)
    return path, feeds


def try_dynamo(name: str, cache: Path):
    """The dynamo export of a family, or None where it cannot be made here
    (it needs onnxscript; failures are skipped silently)."""
    try:
        import warnings
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return export(name, cache, dynamo=True)
    except Exception:   # noqa: BLE001 - any exporter failure means "not in this corpus"
        return None


# Inputs of models shipped in wheels, by file stem: a shape (random data of the
# declared type) or an array (fed as is).  Other symbolic dims: batch 1,
# channels 3, image sides 224, anything else 128.
_SILERO = {"input": (1, 576), "state": np.zeros((2, 1, 128), np.float32),
           "sr": np.array(16000, np.int64)}
KNOWN = {
    "silero_vad": _SILERO, "silero_vad_16k_op15": _SILERO, "silero_vad_half": _SILERO,
    "silero_vad_op18_ifless": _SILERO, "silero_vad_openvino_16k": _SILERO,
    "silero_vad_16k_sequence": {"input": (8, 576), "h": np.zeros((1, 1, 128), np.float32),
                                "c": np.zeros((1, 1, 128), np.float32)},
    "model": {"bytes": (1, 2048)},                     # magika: byte values 0-256
    "ch_PP-OCRv4_det_infer": {"x": (1, 3, 480, 480)},
    "ch_PP-OCRv4_rec_infer": {"x": (1, 3, 48, 320)},
    "ch_ppocr_mobile_v2.0_cls_infer": {"x": (1, 3, 48, 192)},
    "common": {"input1": (1, 1, 64, 160)},             # ddddocr text lines
    "common_old": {"input1": (1, 1, 64, 160)},
}


def _declared_shape(value_info) -> tuple:
    dims = value_info.type.tensor_type.shape.dim
    shape = []
    for i, d in enumerate(dims):
        if d.HasField("dim_value") and d.dim_value > 0:
            shape.append(d.dim_value)
        elif i == 0:
            shape.append(1)
        elif len(dims) == 4:
            shape.append(3 if i == 1 else 224)
        else:
            shape.append(128)
    return tuple(shape)


def shipped_feeds(path: Path) -> dict:
    """Feeds for a shipped model from its declared inputs and KNOWN."""
    import onnx
    from onnx import helper
    model = onnx.load(str(path), load_external_data=False)
    known = KNOWN.get(path.stem, {})
    inits = {i.name for i in model.graph.initializer}
    rng = np.random.default_rng(0)
    feeds = {}
    for vi in model.graph.input:
        if vi.name in inits:
            continue
        dtype = helper.tensor_dtype_to_np_dtype(vi.type.tensor_type.elem_type)
        spec = known.get(vi.name, _declared_shape(vi))
        if isinstance(spec, np.ndarray):
            feeds[vi.name] = spec.astype(dtype)
        elif np.issubdtype(dtype, np.integer):
            feeds[vi.name] = rng.integers(0, 257, spec).astype(dtype)
        else:
            feeds[vi.name] = (rng.standard_normal(spec) * 0.5).astype(dtype)
    return feeds


def shipped_models(folder: Path, cache: Path) -> dict:
    """name -> .onnx path for every model inside the wheels (or unpacked
    packages) under `folder`; wheel members are extracted into the cache."""
    found = {}
    for item in sorted(folder.rglob("*")):
        if item.suffix == ".whl":
            with zipfile.ZipFile(item) as wheel:
                for member in wheel.namelist():
                    if member.endswith(".onnx"):
                        target = cache / "wheels" / item.stem / member
                        if not target.exists():
                            wheel.extract(member, cache / "wheels" / item.stem)
                        package = Path(member).parts[0].removesuffix("_onnxruntime")
                        found[f"{package}.{target.stem}"] = target
        elif item.suffix == ".onnx" and (cache / "wheels") not in item.parents:
            found[f"{item.parent.name}.{item.stem}"] = item
    return found


def corpus(cache: Path = None, wheels: Path = None) -> dict:
    """name -> loader returning (path, feeds): the families, the dynamo
    exports that can be made here, and the shipped models under `wheels`."""
    cache = Path(cache or default_cache())
    loaders = {name: (lambda n=name: export(n, cache)) for name in family_names()}
    for name in DYNAMO:
        loaders[f"{name}_dynamo"] = lambda n=name: try_dynamo(n, cache)
    if wheels:
        loaders.update(shipped(Path(wheels), cache))
    return loaders


def shipped(wheels: Path, cache: Path = None) -> dict:
    """name -> loader returning (path, feeds) for the models under `wheels`."""
    found = shipped_models(Path(wheels), Path(cache or default_cache()))
    return {name: (lambda p=path: (p, shipped_feeds(p))) for name, path in found.items()}


def compare(path: Path, feeds: dict, device=None) -> float:
    """max |clnet - onnxruntime| / max |onnxruntime| over the float outputs."""
    import clnet
    import onnxruntime as ort
    want = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(None, feeds)
    got = clnet.InferenceSession(str(path), device=device).run(None, feeds)
    return rel_err(got, want)


def rel_err(got: list, want: list) -> float:
    err = 0.0
    for g, w in zip(got, want):
        g, w = np.asarray(g, np.float64), np.asarray(w, np.float64)
        if g.shape != w.shape:
            return float("inf")
        if w.size:
            err = max(err, float(np.abs(g - w).max() / max(np.abs(w).max(), 1e-6)))
    return err


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cache", type=Path, default=default_cache())
    ap.add_argument("--wheels", type=Path, default=None, help="folder of downloaded wheels")
    ap.add_argument("--only", default=None, help="comma-separated names")
    ap.add_argument("--list", action="store_true", help="print the names and stop")
    args = ap.parse_args()
    loaders = corpus(args.cache, args.wheels)
    if args.list:
        print("\n".join(loaders))
        return 0
    status = 0
    for name in args.only.split(",") if args.only else loaders:
        try:
            loaded = loaders[name]()
            if loaded is None:
                print(f"{name:34s} skipped: cannot be exported here")
                continue
            print(f"{name:34s} max rel diff vs onnxruntime {compare(*loaded):.2e}", flush=True)
        except Exception as exc:  # noqa: BLE001 - report and go on with the next model
            reason = str(exc).splitlines()[0][:200]
            print(f"{name:34s} FAILED: {type(exc).__name__}: {reason}", flush=True)
            status = 1
    return status


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    sys.exit(main())
