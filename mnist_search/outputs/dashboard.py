"""optuna-dashboard on a study's storage, with its trained weights attached."""

from __future__ import annotations

import errno
import logging
import socket
from pathlib import Path

from mnist_search.errors import ConfigError
from mnist_search.search.storage import default_storage, masked, open_storage, require_database

log = logging.getLogger("mnist_search")
LOOPBACK = ("127.0.0.1", "localhost", "::1")


def serve(
    storage_url: str | None = None,
    *,
    port: int = 8080,
    host: str = "127.0.0.1",
    artifacts: str | Path | None = None,
) -> None:
    """Serve until interrupted. Any host but loopback is allowed with a warning: the dashboard
    has no authentication."""
    from optuna_dashboard import run_server

    from mnist_search.search.artifacts import artifact_store

    if not 0 < port < 65536:
        raise ConfigError("port", f"{port}: must be between 1 and 65535")
    _check_bindable(host, port)
    url = storage_url or default_storage()
    require_database(url)
    st = open_storage(url)
    if host not in LOOPBACK:
        log.warning(
            "warning: binding %s makes the dashboard reachable from the network, "
            "without authentication",
            host,
        )
    log.info("optuna-dashboard for %s on http://%s:%d/ (Ctrl-C stops it)", masked(url), host, port)
    try:
        run_server(st, host=host, port=port, artifact_store=artifact_store(artifacts))
    except OSError as e:  # taken between the check and the bind
        raise ConfigError("port", f"{port} on {host}: {e.strerror or e}") from None


def _check_bindable(host: str, port: int) -> None:
    """Refuse a port that is taken, or a host that is no address of this machine, in one line
    and before the storage is opened."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as e:
        raise ConfigError(
            "host", f"{host!r}: not an address of this machine ({e.strerror})"
        ) from None
    family, kind, proto, _, address = infos[0]
    with socket.socket(family, kind, proto) as probe:
        # What the server sets too: a port whose last connection is closing counts as free.
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(address)
        except OSError as e:
            hint = "; pick another with --port" if e.errno == errno.EADDRINUSE else ""
            raise ConfigError("port", f"{port} on {host}: {e.strerror or e}{hint}") from None
