"""Files in and out. Reading: every file the tool is handed is read with its size capped before
the work (a 4 GB gzip bomb is refused after the cap, not after it is inflated), and every way it
can be bad, from a missing file to a damaged deflate stream, binary bytes or JSON nested
thousands deep, becomes one ``UsageError`` line naming the file. Writing: whole files only, so a
crash never leaves half a file where a reader would take it for done."""

from __future__ import annotations

import gzip
import json
import os
import re
import stat
import tempfile
import zlib
from pathlib import Path
from typing import IO, Any

from mnist_search.errors import UsageError

CHUNK = 1 << 20
JSON_BYTES = 1 << 20  # a spec file is a few kB; a megabyte leaves room and bounds the work
JSON_DEPTH = 32  # a spec nests four deep; a deep array would exhaust Python's recursion
# What can go wrong while inflating: a bad header, a damaged stream, a cut-off end.
_INFLATE_ERRORS = (OSError, EOFError, zlib.error, gzip.BadGzipFile)


class InputError(UsageError):
    """A file the tool was handed cannot be used; the message names it and what is wrong."""


def _open_regular(path: Path) -> IO[bytes]:
    try:
        f = open(path, "rb")  # noqa: SIM115 -- returned to the caller, who closes it
    except IsADirectoryError:
        raise InputError(f"{path}: is a folder, not a file") from None
    except OSError as e:
        raise InputError(f"{path}: cannot read it ({e.strerror or e})") from None
    if not stat.S_ISREG(os.fstat(f.fileno()).st_mode):  # /dev/zero, a FIFO, a socket
        f.close()
        raise InputError(f"{path}: not a regular file")
    return f


def _read_capped(stream: IO[bytes] | gzip.GzipFile, limit: int, path: Path, what: str) -> bytes:
    """At most ``limit`` bytes from ``stream``; one byte more is an error, not a truncation."""
    parts: list[bytes] = []
    total = 0
    while True:
        try:
            chunk = stream.read(min(CHUNK, limit + 1 - total))
        except _INFLATE_ERRORS as e:
            raise InputError(f"{path}: damaged {what} ({type(e).__name__}: {e})") from None
        if not chunk:
            return b"".join(parts)
        parts.append(chunk)
        total += len(chunk)
        if total > limit:
            raise InputError(
                f"{path}: more than {limit:,} bytes{' once inflated' if what == 'gzip data' else ''}, "
                f"larger than any valid file of its kind"
            )


def read_bytes(path: str | Path, limit: int) -> bytes:
    """A regular file's bytes, refused past ``limit`` bytes without reading further."""
    path = Path(path)
    with _open_regular(path) as f:
        size = os.fstat(f.fileno()).st_size
        if size > limit:
            raise InputError(
                f"{path}: {size:,} bytes, more than the {limit:,} a valid file of its kind has"
            )
        return _read_capped(f, limit, path, "file")


def read_gzip(path: str | Path, limit: int) -> bytes:
    """A .gz file inflated as a stream, refused once it inflates past ``limit`` bytes."""
    path = Path(path)
    with _open_regular(path) as f, gzip.GzipFile(fileobj=f) as z:
        data = _read_capped(z, limit, path, "gzip data")
    if not data:
        raise InputError(f"{path}: empty, not gzip data")
    return data


def _depth(text: str) -> int:
    """The deepest nesting of arrays and objects, strings skipped (computed without recursion)."""
    bare = re.sub(r'"(?:[^"\\]|\\.)*"', "", text)
    depth = deepest = 0
    for m in re.finditer(r"[\[\]{}]", bare):
        depth += 1 if m.group() in "[{" else -1
        deepest = max(deepest, depth)
    return deepest


def read_json(path: str | Path, limit: int = JSON_BYTES, max_depth: int = JSON_DEPTH) -> Any:
    """A JSON file: at most ``limit`` bytes, UTF-8, nested at most ``max_depth`` deep."""
    path = Path(path)
    raw = read_bytes(path, limit)
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise InputError(
            f"{path}: not UTF-8 text (byte 0x{raw[e.start]:02x} at offset "
            f"{e.start}); a JSON file was expected"
        ) from None
    if _depth(text) > max_depth:
        raise InputError(f"{path}: JSON nested more than {max_depth} deep; a spec nests 4")
    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        raise InputError(
            f"{path}: not JSON ({e.msg} at line {e.lineno}, column {e.colno})"
        ) from None
    except (RecursionError, ValueError) as e:  # ValueError: e.g. an integer of 5,000 digits
        raise InputError(f"{path}: not usable JSON ({str(e).splitlines()[0]})") from None


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
    from mnist_search.errors import ConfigError

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
