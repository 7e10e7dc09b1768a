"""Every error clnet raises on purpose derives from ClnetError.

The CLI prints ``str(error)`` as one line and exits non-zero, so each message
must say what was wrong and what the user can do about it.
"""


class ClnetError(Exception):
    """Base class of all clnet errors."""


class ModelError(ClnetError):
    """The model file is missing, truncated, malformed or inconsistent."""


class UnsupportedOpError(ModelError):
    """The model uses operators (or attributes) clnet cannot run."""


class InputError(ClnetError):
    """A feed has the wrong name, shape or dtype."""


class DeviceError(ClnetError):
    """No OpenCL platform/device, or the selection string matches nothing."""


class KernelBuildError(ClnetError):
    """An OpenCL program failed to build; the message carries the build log."""


class DeviceMemoryError(ClnetError):
    """The device ran out of memory, or a buffer exceeds its max allocation."""
