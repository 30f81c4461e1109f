"""A throwaway PostgreSQL server on 127.0.0.1, in a temporary folder (tests and benchmarks)."""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import socket
import subprocess
import tempfile
from typing import Iterator


class PgServerMissing(RuntimeError):
    pass


def _bindir() -> str | None:
    for d in sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True):
        if os.path.exists(os.path.join(d, "initdb")):
            return d
    found = shutil.which("initdb")
    return os.path.dirname(found) if found else None


@contextlib.contextmanager
def throwaway_postgres() -> Iterator[str]:
    """Start a server, yield a URL to an empty database, then stop it and remove its files."""
    bindir = _bindir()
    if bindir is None:
        raise PgServerMissing("PostgreSQL server binaries not installed (.ci/run installs them)")
    base = tempfile.mkdtemp(prefix="mnist-search-pg-")
    prefix: list[str] = []
    if os.geteuid() == 0:  # initdb refuses to run as root
        import pwd

        pw = pwd.getpwnam("postgres")
        os.chown(base, pw.pw_uid, pw.pw_gid)
        prefix = ["runuser", "-u", "postgres", "--"]
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    data = os.path.join(base, "data")

    def pg(tool: str, *args: str) -> None:
        subprocess.run(
            [*prefix, os.path.join(bindir, tool), *args],
            check=True,
            capture_output=True,
            text=True,
            timeout=120,
        )

    pg("initdb", "-D", data, "-U", "postgres", "-A", "trust", "-E", "UTF8", "--no-sync")
    pg(
        "pg_ctl",
        "-D",
        data,
        "-l",
        os.path.join(base, "log"),
        "-w",
        "-o",
        f"-h 127.0.0.1 -p {port} -k {base} -F -c max_connections=200",
        "start",
    )
    try:
        pg("createdb", "-h", "127.0.0.1", "-p", str(port), "-U", "postgres", "mnist")
        yield f"postgresql://postgres@127.0.0.1:{port}/mnist"
    finally:
        pg("pg_ctl", "-D", data, "-m", "fast", "-w", "stop")
        shutil.rmtree(base, ignore_errors=True)
