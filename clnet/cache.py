"""The per-user cache folder: tuning files, device speed probes, kernel binaries.

Every file clnet writes that a later run reads (cache entries, tuning
files, optimised models) goes through ``atomic_write``: a process killed
mid-write leaves the previous file whole, never half of the new one.
"""
from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Union


def cache_dir() -> Path:
    """Per-user cache folder (``CLNET_CACHE_DIR``, else ``$XDG_CACHE_HOME/clnet``)."""
    base = os.environ.get("CLNET_CACHE_DIR") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "clnet")
    path = Path(base)
    path.mkdir(parents=True, exist_ok=True)
    return path


def atomic_write(path: Union[str, os.PathLike], data: Union[bytes, str]) -> Path:
    """Write data to path through a temporary file in the same folder,
    flushed to disk and renamed over path (rename is atomic on POSIX and
    Windows): readers see the old file or the new one, whole."""
    path = Path(path)
    if isinstance(data, str):
        data = data.encode()
    path.parent.mkdir(parents=True, exist_ok=True)
    # a unique name per writer: two processes saving at once do not share one
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    return path
