"""Writing files whole: a crash never leaves half a file where a reader would take it for done."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path


def write_atomic(path: Path, content: str | bytes) -> None:
    """Write to a temporary file beside ``path``, then rename it over ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    if isinstance(content, bytes):
        tmp.write_bytes(content)
    else:
        tmp.write_text(content, encoding="utf-8")
    os.replace(tmp, path)


def check_writable(option: str, path: str | Path, *, folder: bool) -> None:
    """Refuse an output path that cannot be written, before any work is done: it must be (or
    be able to become) a folder or a file as asked, inside a folder that can be written."""
    from .errors import ConfigError

    p = Path(path)
    if p.exists() and folder != p.is_dir():
        raise ConfigError(option, f"{p}: exists and is {'not ' if folder else ''}a folder")
    target = p if p.is_dir() else p.parent
    while not target.exists():
        target = target.parent
    if not target.is_dir():
        raise ConfigError(option, f"{p}: {target} is a file, not a folder")
    try:  # a probe, gone at once: permissions alone miss read-only mounts and root
        with tempfile.TemporaryFile(dir=target):
            pass
    except OSError as e:
        raise ConfigError(option, f"{p}: cannot write in {target} ({e.strerror})") from None
