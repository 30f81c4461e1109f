"""A package's public face imported on first use: ``import mnist_search.search`` stays as quick
as the command line needs, and ``from mnist_search.search import run_search`` still works."""

from __future__ import annotations

from importlib import import_module
from typing import Any, Callable


def exports(package: str, api: dict[str, str]) -> Callable[[str], Any]:
    """The module ``__getattr__`` of ``package``: each name of ``api`` from its module."""

    def __getattr__(name: str) -> Any:
        if name in api:
            return getattr(import_module(f"{package}.{api[name]}"), name)
        raise AttributeError(f"module {package!r} has no attribute {name!r}")

    return __getattr__
