"""Lazy re-exports for the package ``__init__`` files (PEP 562).

Importing any ``arc_sandbox.x.y`` first runs ``arc_sandbox/__init__.py`` and ``arc_sandbox/x/__init__.py``.
Were those to import their modules, a worker that only needs the DSL and the worker loop would also load
the pool, scoring, diagnostics, tqdm and psutil, and a program could reach them. So each ``__init__`` names
its public API here and a name's module is imported on first use.
"""
from __future__ import annotations

import importlib
from typing import Any, Callable


def lazy_exports(namespace: dict[str, Any], exports: dict[str, tuple[str, ...]]) -> tuple[Callable, Callable]:
    """``(__getattr__, __dir__)`` for the package whose globals are ``namespace``.

    ``exports`` maps a module's absolute name to the names it provides; a name that is not an attribute of
    its module is imported as that module's submodule (``{"arc_sandbox.dsl": ("common",)}``).
    """
    where = {name: module for module, names in exports.items() for name in names}
    package = namespace["__name__"]

    def __getattr__(name: str) -> Any:
        if name not in where:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        module = importlib.import_module(where[name])
        try:
            value = getattr(module, name)
        except AttributeError:
            value = importlib.import_module(f"{where[name]}.{name}")
        namespace[name] = value   # later look-ups find a plain global
        return value

    def __dir__() -> list[str]:
        return sorted(set(namespace) | set(where))

    return __getattr__, __dir__
