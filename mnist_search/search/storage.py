"""Where studies live: storage URLs checked before anything is created, opened with heartbeats,
and studies that must already exist loaded without creating a file for a mistyped path."""

from __future__ import annotations

import random
import re
import time
import warnings
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import optuna
import sqlalchemy
from optuna.storages._rdb import models
from optuna.storages._rdb.storage import _create_scoped_session
from optuna.trial import TrialState

from mnist_search.errors import UsageError
from mnist_search.redact import masked

STUDIES = Path("studies")


class StorageError(UsageError):
    """A storage URL that cannot work, or a study that is not where it was looked for."""


# A study name becomes a file name under studies/: no path separators, no leading dot.
NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._-]{0,127}")


def check_study_name(name: str) -> None:
    if not NAME.fullmatch(name):
        from mnist_search.errors import ConfigError

        raise ConfigError(
            "study_name",
            f"{name!r}: use 1 to 128 letters, digits, '.', '_' or "
            "'-', not starting with '.' or '-'",
        )


DEFAULT_STORAGE = f"sqlite:///{STUDIES}/mnist-search.db"


def default_storage() -> str:
    """One SQLite file for every study (searches, their final stages, replays), so one dashboard
    shows them side by side."""
    return DEFAULT_STORAGE


def check_url(url: str) -> None:
    """Reject a URL that cannot work before anything is created."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        parsed = make_url(url)
    except ArgumentError:
        raise StorageError(
            f"storage URL {masked(url)!r} is malformed; expected for example "
            "sqlite:///studies/NAME.db or postgresql://USER@HOST/DB"
        ) from None
    if parsed.get_backend_name() == "sqlite":
        db = parsed.database
        if not db or db == ":memory:":
            raise StorageError(
                f"storage URL {masked(url)!r} names no database file; expected "
                "sqlite:///path/to/file.db"
            )
        parent = Path(db).expanduser().resolve().parent
        if not parent.is_dir():
            raise StorageError(f"storage URL {masked(url)!r}: folder {parent} does not exist")
        check_sqlite_owner(Path(db).expanduser())


# Tables every Optuna RDB schema has; a file with tables but not these belongs to something else.
OPTUNA_TABLES = {"studies", "trials", "version_info"}


def check_sqlite_owner(db: Path) -> None:
    """Refuse an existing file that is not an Optuna SQLite database: another program's
    database (tables of its own) or not a database at all. A new or empty file is fine; the
    file is only read, never created or changed, here."""
    if not db.exists():
        return
    if not db.is_file():
        raise StorageError(f"storage file {db} is not a regular file")
    try:
        with open(db, "rb") as f:
            head = f.read(16)
    except OSError as e:
        raise StorageError(f"storage file {db}: cannot read it ({e.strerror})") from None
    if not head:
        return  # an empty file: SQLite makes a new database in it
    if head != b"SQLite format 3\x00":
        raise StorageError(f"storage file {db} is not a SQLite database; refusing to touch it")
    import sqlite3

    try:
        # mode=rw, not ro: never creates the file, and can roll back the hot journal a killed
        # process leaves (a read-only connection cannot, and would refuse the tool's own file).
        con = sqlite3.connect(f"{db.resolve().as_uri()}?mode=rw", uri=True, timeout=60)
        try:
            tables = {
                r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type='table'")
            }
        finally:
            con.close()
    except sqlite3.OperationalError:
        return  # locked, read-only, unopenable: the storage itself says so when it opens
    except sqlite3.DatabaseError as e:  # not a database, encrypted, damaged
        raise StorageError(f"storage file {db}: unreadable SQLite database ({e})") from None
    if tables and not OPTUNA_TABLES <= tables:
        shown = ", ".join(sorted(tables)[:5]) + (", …" if len(tables) > 5 else "")
        raise StorageError(
            f"storage file {db} holds another program's tables ({shown}), not Optuna's; "
            "refusing to add studies to it: pass a new file or an Optuna database"
        )


def check_reachable(url: str) -> None:
    """Connect once to a database server, writing nothing, so a bad host or password is found
    before any work starts. (A SQLite file needs no server.)"""
    if url.startswith("sqlite"):
        return
    import sqlalchemy

    try:
        engine = sqlalchemy.create_engine(
            url, connect_args={"connect_timeout": 10} if url.startswith("postgresql") else {}
        )
        with engine.connect():
            pass
        engine.dispose()
    except Exception as e:
        raise _unusable(url, e) from None


def _unusable(url: str, e: Exception) -> StorageError:
    first = str(e).splitlines()[0] if str(e) else type(e).__name__
    return StorageError(masked(f"storage {masked(url)!r} is unusable: {first}", url))


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


class _BeatingStorage(optuna.storages.RDBStorage):
    """RDB storage whose running trials always carry a heartbeat, so a killed process never
    leaves a trial RUNNING for good.

    Optuna's first beat comes from a thread started after the trial runs; a process killed in
    between left a RUNNING trial with no heartbeat, which Optuna never fails or retries. Here a
    queued trial is taken up and given its first beat in one statement's transaction (which
    also makes taking it up atomic on SQLite, where two processes could both take the same
    queued trial), a new trial is beaten right after it is created, and a RUNNING trial that
    still has no beat a grace period after it started counts as stale."""

    def create_new_trial(self, study_id, template_trial=None):
        trial_id = super().create_new_trial(study_id, template_trial)
        if self.get_heartbeat_interval() and (
            template_trial is None or template_trial.state == TrialState.RUNNING
        ):
            self.record_heartbeat(trial_id)
        return trial_id

    def set_trial_state_values(self, trial_id, state, values=None):
        if state == TrialState.RUNNING and values is None:
            return self._take_up(trial_id)
        return super().set_trial_state_values(trial_id, state, values)

    def _take_up(self, trial_id: int) -> bool:
        """WAITING -> RUNNING only if still WAITING (a conditional UPDATE: a second process
        changes no row and gets False, as Optuna's check-then-write meant to give)."""
        trials = models.TrialModel.__table__
        now = datetime.now(timezone.utc).replace(tzinfo=None)  # Optuna stores naive UTC
        with _create_scoped_session(self.scoped_session) as session:
            taken = (
                session.execute(  # type: ignore[attr-defined]  # an UPDATE's CursorResult
                    trials.update()
                    .where(trials.c.trial_id == trial_id, trials.c.state == TrialState.WAITING)
                    .values(state=TrialState.RUNNING, datetime_start=now)
                ).rowcount
                == 1
            )
            if taken and self.get_heartbeat_interval():
                session.add(models.TrialHeartbeatModel(trial_id=trial_id))
        return taken

    def claim(self, study_id: int, key: str) -> bool:
        """True for exactly one caller per (study, key) among all processes: a plain INSERT,
        which the table's unique (study, key) lets through once."""
        table = models.StudySystemAttributeModel.__table__
        try:
            with _create_scoped_session(self.scoped_session) as session:
                session.execute(
                    table.insert().values(study_id=study_id, key=key, value_json="true")
                )
        except sqlalchemy.exc.IntegrityError:
            return False
        return True

    def _get_stale_trial_ids(self, study_id: int) -> list[int]:
        stale = super()._get_stale_trial_ids(study_id)
        grace = self.grace_period or 2 * (self.heartbeat_interval or 0)
        cutoff = datetime.now(timezone.utc).replace(tzinfo=None) - timedelta(seconds=grace)
        trials, beats = models.TrialModel.__table__, models.TrialHeartbeatModel.__table__
        with _create_scoped_session(self.scoped_session, True) as session:
            silent = (
                session.execute(
                    sqlalchemy.select(trials.c.trial_id).where(
                        trials.c.study_id == study_id,
                        trials.c.state == TrialState.RUNNING,
                        trials.c.datetime_start < cutoff,
                        ~sqlalchemy.exists().where(beats.c.trial_id == trials.c.trial_id),
                    )
                )
                .scalars()
                .all()
            )
        return stale + [t for t in silent if t not in stale]


def claim_once(study: optuna.Study, key: str) -> bool:
    """Whether this process is the first to claim ``key`` on ``study`` (e.g. to queue its warm
    starts). A storage that cannot tell (not opened here) says yes, as before."""
    backend = getattr(study._storage, "_backend", study._storage)
    if not isinstance(backend, _BeatingStorage):
        return True
    return backend.claim(study._study_id, key)


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
        beat = {
            "heartbeat_interval": heartbeat,
            "grace_period": 3 * heartbeat,
            "heartbeat_stale_trial_callback": optuna.storages.RetryHeartbeatStaleTrialCallback(
                max_retry=3
            ),
        }
    for attempt in range(8):
        try:
            with warnings.catch_warnings():
                # Heartbeats are marked experimental in Optuna; this tool relies on them.
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                return _BeatingStorage(url, engine_kwargs=kwargs, **beat)
        except Exception as e:
            # Processes starting at once on a new database race to create its schema; the
            # loser sees a duplicate key and finds the schema made once it tries again.
            if attempt == 7 or not _schema_race(e):
                raise _unusable(url, e) from None
            time.sleep(0.1 + random.random() * 0.4)
    raise AssertionError("unreachable")


def _schema_race(e: Exception) -> bool:
    text = str(e).lower()
    return any(
        s in text
        for s in ("unique constraint", "already exists", "duplicate key", "database is locked")
    )


def missing_sqlite_file(url: str) -> Path | None:
    """The database file a sqlite:/// URL names, when it does not exist (reading must not
    create it)."""
    if not url.startswith("sqlite:///"):
        return None
    db = Path(url[len("sqlite:///") :])
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
        raise StorageError(f"no study named {study_name!r} in {masked(url)}") from None
