"""Graph -> Graph passes (pure functions, no device)."""
from .fusion import fold_batchnorm, fuse_epilogues, optimize  # noqa: F401
