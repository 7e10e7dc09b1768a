"""Train a small CNN on scikit-learn's digits and export it to ONNX.

The model is the example used by the README's first command. It is trained
with PyTorch on ``sklearn.datasets.load_digits`` (8x8 grey images, 10
classes, bundled with scikit-learn, so nothing is downloaded), exported to
ONNX opset 13 with a dynamic batch axis, and checked against onnxruntime.

Outputs, written to ``--out-dir`` (default: the repo's ``examples/``):

* ``digits.onnx``: the model, input ``input`` [N,1,8,8] float32,
  output ``logits`` [N,10] float32.
* ``digits_samples.npz``: key ``input``, the first 16 held-out images.
* ``digits_labels.npy``: their true labels, int64 [16].

Requires ``torch`` (``pip install torch==2.13.0``, CPU-only is enough),
``onnx``, ``onnxruntime``, ``scikit-learn`` and ``numpy``.

Usage::

    python tools/train_digits.py [--out-dir DIR] [--seed N]
"""

import argparse
import random
import warnings
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import torch
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split
from torch import nn

DEFAULT_OUT_DIR = Path(__file__).resolve().parent.parent / "examples"
NUM_SAMPLES = 16
EPOCHS = 40
BATCH_SIZE = 64
LEARNING_RATE = 1e-3


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out-dir", type=Path, default=DEFAULT_OUT_DIR,
                        help="where to write the model and samples")
    parser.add_argument("--seed", type=int, default=0, help="random seed")
    return parser.parse_args()


def set_seed(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def load_data() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    digits = load_digits()
    x = (digits.images / 16.0).astype(np.float32).reshape(-1, 1, 8, 8)
    y = digits.target.astype(np.int64)
    x_train, x_test, y_train, y_test = train_test_split(
        x, y, test_size=0.2, random_state=0, stratify=y)
    return x_train, x_test, y_train, y_test


def build_model() -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(1, 16, kernel_size=3, padding=1),
        nn.ReLU(),
        nn.Conv2d(16, 32, kernel_size=3, padding=1),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(32 * 4 * 4, 64),
        nn.ReLU(),
        nn.Linear(64, 10),
    )


def train(model: nn.Module, x: np.ndarray, y: np.ndarray) -> None:
    x_t = torch.from_numpy(x)
    y_t = torch.from_numpy(y)
    optimizer = torch.optim.Adam(model.parameters(), lr=LEARNING_RATE)
    loss_fn = nn.CrossEntropyLoss()
    model.train()
    for epoch in range(EPOCHS):
        order = torch.randperm(len(x_t))
        for start in range(0, len(order), BATCH_SIZE):
            idx = order[start:start + BATCH_SIZE]
            optimizer.zero_grad()
            loss = loss_fn(model(x_t[idx]), y_t[idx])
            loss.backward()
            optimizer.step()
        if (epoch + 1) % 10 == 0:
            print(f"epoch {epoch + 1:3d}  last batch loss {loss.item():.4f}")


def predict(model: nn.Module, x: np.ndarray) -> np.ndarray:
    model.eval()
    with torch.no_grad():
        return model(torch.from_numpy(x)).numpy()


def accuracy(logits: np.ndarray, y: np.ndarray) -> float:
    return float((logits.argmax(axis=1) == y).mean())


def export_onnx(model: nn.Module, path: Path) -> None:
    model.eval()
    dummy = torch.zeros(1, 1, 8, 8, dtype=torch.float32)
    # The TorchScript exporter (dynamo=False) is chosen on purpose; silence
    # its deprecation notice.
    warnings.filterwarnings("ignore", message=".*legacy TorchScript-based",
                            category=DeprecationWarning)
    torch.onnx.export(
        model, (dummy,), str(path),
        dynamo=False,
        opset_version=13,
        input_names=["input"],
        output_names=["logits"],
        dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}},
    )
    onnx.checker.check_model(onnx.load(str(path)))


def check_onnxruntime(path: Path, x: np.ndarray, y: np.ndarray,
                      torch_logits: np.ndarray) -> None:
    session = ort.InferenceSession(str(path),
                                   providers=["CPUExecutionProvider"])
    ort_logits = session.run(["logits"], {"input": x})[0]
    max_diff = float(np.abs(ort_logits - torch_logits).max())
    np.testing.assert_allclose(ort_logits, torch_logits, rtol=1e-4, atol=1e-4)
    print(f"onnxruntime matches torch: max |diff| = {max_diff:.2e}")
    print(f"onnxruntime held-out accuracy: {accuracy(ort_logits, y):.4f}")


def save_samples(out_dir: Path, x: np.ndarray, y: np.ndarray) -> None:
    np.savez(out_dir / "digits_samples.npz", input=x[:NUM_SAMPLES])
    np.save(out_dir / "digits_labels.npy", y[:NUM_SAMPLES])


def main() -> None:
    args = parse_args()
    set_seed(args.seed)
    args.out_dir.mkdir(parents=True, exist_ok=True)
    x_train, x_test, y_train, y_test = load_data()
    print(f"train {len(x_train)}  held-out {len(x_test)}")
    model = build_model()
    train(model, x_train, y_train)
    print(f"torch train accuracy: "
          f"{accuracy(predict(model, x_train), y_train):.4f}")
    test_logits = predict(model, x_test)
    print(f"torch held-out accuracy: {accuracy(test_logits, y_test):.4f}")
    model_path = args.out_dir / "digits.onnx"
    export_onnx(model, model_path)
    print(f"wrote {model_path}")
    check_onnxruntime(model_path, x_test, y_test, test_logits)
    save_samples(args.out_dir, x_test, y_test)
    print(f"wrote samples and labels to {args.out_dir}")


if __name__ == "__main__":
    main()
