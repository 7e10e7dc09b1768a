"""The per-user cache folder: tuning files, device speed probes, kernel binaries."""
from __future__ import annotations

import os
from pathlib import Path


def cache_dir() -> Path:
    """Per-user cache folder (``CLNET_CACHE_DIR``, else ``$XDG_CACHE_HOME/clnet``)."""
    base = os.environ.get("CLNET_CACHE_DIR") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "clnet")
    path = Path(base)
    path.mkdir(parents=True, exist_ok=True)
    return path
