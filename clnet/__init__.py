"""clnet: neural-network inference for ONNX models on any OpenCL device."""
from .errors import (ClnetError, DeviceError, DeviceMemoryError, InputError,  # noqa: F401
                     KernelBuildError, ModelError, UnsupportedOpError)

__version__ = "0.1.0"


def __getattr__(name):
    # keep `import clnet` cheap: pyopencl/onnx load only when a session is made
    if name == "InferenceSession":
        from .runtime import InferenceSession
        return InferenceSession
    if name in ("list_devices", "select_device"):
        from . import device
        return getattr(device, name)
    raise AttributeError(f"module 'clnet' has no attribute {name!r}")
