"""optuna-dashboard on a study's storage, with its trained weights attached."""

from __future__ import annotations

import logging
from pathlib import Path

from .errors import ConfigError
from .storage import default_storage, masked, open_storage, require_database

log = logging.getLogger("mnist_search")
LOOPBACK = ("127.0.0.1", "localhost", "::1")


def serve(storage_url: str | None = None, *, port: int = 8080,
          host: str = "127.0.0.1", artifacts: str | Path | None = None) -> None:
    """Serve until interrupted. Any host but loopback is allowed with a warning: the dashboard
    has no authentication."""
    from optuna_dashboard import run_server

    from .artifacts import artifact_store

    if not 0 < port < 65536:
        raise ConfigError("port", f"{port}: must be between 1 and 65535")
    url = storage_url or default_storage()
    require_database(url)
    st = open_storage(url)
    if host not in LOOPBACK:
        log.warning("warning: binding %s makes the dashboard reachable from the network, "
                    "without authentication", host)
    log.info("optuna-dashboard for %s on http://%s:%d/ (Ctrl-C stops it)", masked(url), host,
             port)
    run_server(st, host=host, port=port, artifact_store=artifact_store(artifacts))
