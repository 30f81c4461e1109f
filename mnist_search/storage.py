"""Where studies live: storage URLs checked before anything is created, opened with heartbeats,
and studies that must already exist loaded without creating a file for a mistyped path."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import optuna

from .errors import UsageError

STUDIES = Path("studies")


class StorageError(UsageError):
    """A storage URL that cannot work, or a study that is not where it was looked for."""


def default_storage(study_name: str) -> str:
    return f"sqlite:///{STUDIES}/{study_name}.db"


def check_url(url: str) -> None:
    """Reject a URL that cannot work before anything is created."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        parsed = make_url(url)
    except ArgumentError:
        raise StorageError(f"storage URL {url!r} is malformed; expected for example "
                           "sqlite:///studies/NAME.db or postgresql://USER@HOST/DB") from None
    if parsed.get_backend_name() == "sqlite":
        db = parsed.database
        if not db or db == ":memory:":
            raise StorageError(f"storage URL {url!r} names no database file; expected "
                               "sqlite:///path/to/file.db")
        parent = Path(db).expanduser().resolve().parent
        if not parent.is_dir():
            raise StorageError(f"storage URL {url!r}: folder {parent} does not exist")


def check_reachable(url: str) -> None:
    """Connect once to a database server, writing nothing, so a bad host or password is found
    before any work starts. (A SQLite file needs no server.)"""
    if url.startswith("sqlite"):
        return
    import sqlalchemy

    try:
        engine = sqlalchemy.create_engine(url, connect_args={"connect_timeout": 10}
                                          if url.startswith("postgresql") else {})
        with engine.connect():
            pass
        engine.dispose()
    except Exception as e:
        raise StorageError(f"storage {url!r} is unusable: {str(e).splitlines()[0]}") from None


def check(url: str, *, default: bool = False) -> None:
    """All checks of a storage URL that need nothing written. The default URL's folder is made
    later, once the rest of the input is known good."""
    if not default:
        check_url(url)
        check_reachable(url)


def prepare(url: str) -> None:
    """Make the default studies folder when the URL points into it."""
    if url.startswith(f"sqlite:///{STUDIES}/"):
        STUDIES.mkdir(exist_ok=True)


def open_storage(url: str, heartbeat: int | None = None) -> optuna.storages.RDBStorage:
    """An RDB storage. With ``heartbeat`` (seconds), a running trial whose process stops beating
    for three intervals is marked FAIL by the next worker to start a trial, and queued again."""
    check_url(url)
    kwargs: dict[str, Any] = {}
    if url.startswith("sqlite"):
        # Wait for a lock instead of failing with "database is locked" when workers share a file.
        kwargs["connect_args"] = {"timeout": 60}
    elif url.startswith("postgresql"):
        kwargs["connect_args"] = {"connect_timeout": 10}
    beat: dict[str, Any] = {}
    if heartbeat:
        beat = {"heartbeat_interval": heartbeat, "grace_period": 3 * heartbeat,
                "heartbeat_stale_trial_callback":
                    optuna.storages.RetryHeartbeatStaleTrialCallback(max_retry=3)}
    try:
        with warnings.catch_warnings():
            # Heartbeats are marked experimental in Optuna; this tool relies on them knowingly.
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            return optuna.storages.RDBStorage(url, engine_kwargs=kwargs, **beat)
    except Exception as e:
        raise StorageError(f"storage {url!r} is unusable: {str(e).splitlines()[0]}") from None


def missing_sqlite_file(url: str) -> Path | None:
    """The database file a sqlite:/// URL names, when it does not exist (reading must not
    create it)."""
    if not url.startswith("sqlite:///"):
        return None
    db = Path(url[len("sqlite:///"):])
    return None if db.is_file() else db


def require_database(url: str) -> None:
    """Refuse a sqlite:/// URL whose file does not exist, instead of creating an empty one."""
    check_url(url)
    db = missing_sqlite_file(url)
    if db is not None:
        raise StorageError(f"no study database at {db}; run optimize first or pass --storage")


def load_existing(study_name: str, url: str) -> optuna.Study:
    """A study that must exist, loaded without creating a database file for a wrong path."""
    require_database(url)
    try:
        return optuna.load_study(study_name=study_name, storage=open_storage(url))
    except KeyError:
        raise StorageError(f"no study named {study_name!r} in {url}") from None
