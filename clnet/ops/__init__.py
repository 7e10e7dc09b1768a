"""Operator lowerings.  Every module in this package registers its ops with
``@op`` on import; a new op family is a new file here, nothing else to edit."""
import importlib
import pkgutil

from .registry import lookup, op, supported_ops  # noqa: F401

for _module in sorted(m.name for m in pkgutil.iter_modules(__path__)):
    if _module != "registry":
        importlib.import_module(f"{__name__}.{_module}")
