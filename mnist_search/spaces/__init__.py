"""The registry of search spaces: ``modern`` (the default), ``tiny`` (the published ≤1K nets'
family) and ``plain`` (the write-up's kind)."""

from __future__ import annotations

from mnist_search.net.spec import SpecError
from mnist_search.spaces import modern, plain, tiny
from mnist_search.spaces.base import Space

SPACES: dict[str, Space] = {"modern": modern.SPACE, "tiny": tiny.SPACE, "plain": plain.SPACE}


def get_space(name: str) -> Space:
    try:
        return SPACES[name]
    except KeyError:
        raise SpecError(f"space {name!r}; valid: {', '.join(SPACES)}") from None


__all__ = ["SPACES", "Space", "get_space"]
