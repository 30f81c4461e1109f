"""Storage passwords out of everything the program shows: its messages and files (``masked``)
and its own line in the process list (``hide_from_process_list``).

Light on purpose (no torch, no Optuna): the command line is rewritten before the slow imports.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

# scheme://user:password@host: the password is everything between the user's colon and the @
# (in free text, up to a blank; in a URL itself, as SQLAlchemy reads it, anything but an @).
_IN_TEXT = re.compile(r"(://[^:/@\s]*:)[^@\s]+@")
_IN_URL = re.compile(r"://[^:/@]*:([^@]+)@")
# ...?password=secret&...: libpq and psycopg also take it as a query parameter.
_IN_QUERY = re.compile(r"([?&]password=)[^&#\s'\"]*", re.IGNORECASE)
_QUERY_VALUE = re.compile(r"[?&]password=([^&#]+)", re.IGNORECASE)


def masked(text: str, url: str | None = None) -> str:
    """``text`` with the password of any URL in it (and of ``url``, wherever it appears in
    ``text``, e.g. in a driver's message) replaced by ***."""
    if url:
        for pattern in (_IN_URL, _QUERY_VALUE):
            m = pattern.search(url)
            if m:
                # Wherever it stands alone: a one-letter password is not masked inside words
                # ('psycopg'), which would make the message unreadable and hide nothing.
                alone = rf"(?<![A-Za-z0-9]){re.escape(m.group(1))}(?![A-Za-z0-9])"
                text = re.sub(alone, "***", text)
    return _IN_QUERY.sub(r"\1***", _IN_TEXT.sub(r"\1***@", text))


def own_command_line() -> list[str]:
    """This process's arguments as the process list shows them (``python -m mnist_search ...``),
    or, where there is no /proc, as Python saw them."""
    try:
        raw = Path("/proc/self/cmdline").read_bytes()
    except OSError:
        return [sys.executable, *sys.argv]
    return [a.decode(errors="replace") for a in raw.rstrip(b"\0").split(b"\0")]


def hide_from_process_list() -> bool:
    """Rewrite this process's command line (what ``ps`` and /proc/<pid>/cmdline show, and what a
    child shows between its fork and its exec) with every password masked; True if there was one.

    A password typed on the command line is visible from the start until this call (a tenth of a
    second: it runs before torch is imported); $MNIST_SEARCH_STORAGE keeps it off altogether."""
    args = own_command_line()
    shown = [masked(a, a) for a in args]
    if shown == args:
        return False
    import setproctitle

    setproctitle.setproctitle(" ".join(shown))
    return True
