"""Ship a frontier's rows: each row's spec file, with where it came from, into a folder of known
nets (the package's ``catalog/found/``), so that what a user retrains, what the warm start
queues and what the table says are one set of nets.

The folder then holds exactly the rows: its other spec files are removed (a repository keeps
them in its history). Each file keeps everything ``train --spec`` needs to reproduce its row (net,
recipe, length, first seed, data split) and adds its provenance: the command, the code's commit,
the date, the machine, the dataset, and the run file its figures come from (``record``).
"""

from __future__ import annotations

import json
import logging
import subprocess
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from mnist_search.errors import ConfigError
from mnist_search.files import check_writable, read_json, write_atomic
from mnist_search.frontier.outputs import machine
from mnist_search.frontier.run import FrontierOutcome, FrontierRow
from mnist_search.redact import masked

log = logging.getLogger("mnist_search")


@dataclass
class Shipped:
    written: list[Path] = field(default_factory=list)
    removed: list[Path] = field(default_factory=list)


def commit() -> str:
    """The code's commit where it runs from a git checkout, else the package's version."""
    here = Path(__file__).resolve().parent
    try:
        done = subprocess.run(
            ["git", "-C", str(here), "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            timeout=10,
        )
    except (OSError, subprocess.SubprocessError):
        done = None
    if done is not None and done.returncode == 0 and done.stdout.strip():
        dirty = subprocess.run(
            ["git", "-C", str(here), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            timeout=10,
        ).stdout.strip()
        return done.stdout.strip() + (" (with uncommitted changes)" if dirty else "")
    from importlib.metadata import version

    return f"mnist-search {version('mnist-search')}"


def shipped_body(row: FrontierRow, provenance: dict[str, Any]) -> dict[str, Any]:
    body = read_json(row.spec_file)
    if not isinstance(body, dict) or "spec" not in body or "result" not in body:
        raise ConfigError("ship", f"{row.spec_file}: not a spec file the frontier wrote")
    body = dict(body)
    body["record"] = str(row.spec_file)
    body["provenance"] = provenance | {"budget_wall_seconds": row.wall_seconds}
    if row.fresh_seeds is not None:
        body["fresh"] = {
            "seeds": row.fresh_seeds,
            "val_mean": row.fresh_val_mean,
            "val_std": row.fresh_val_std,
            "test_mean": row.fresh_test_mean,
            "test_std": row.fresh_test_std,
        }
    return body


def ship_rows(outcome: FrontierOutcome, folder: str | Path, command: str) -> Shipped:
    """Write ``budget-<B>.json`` per row into ``folder`` and remove its other spec files. Refused
    (nothing written) for an interrupted run or one with a budget that chose nothing: a partial
    set would leave the folder with some rows of another run."""
    folder = Path(folder)
    if outcome.interrupted or outcome.missing or not outcome.rows:
        why = "it was interrupted" if outcome.interrupted else "not every budget chose a net"
        raise ConfigError("ship", f"{folder}: nothing shipped: {why}; run the same command again")
    check_writable("ship", folder, folder=True)
    provenance = {
        "command": masked(command, outcome.config.search.storage),
        "commit": commit(),
        "date": datetime.now(timezone.utc).strftime("%Y-%m-%d"),
        "machine": machine(),
        "dataset": outcome.dataset,
    }
    bodies = {f"budget-{r.budget}.json": shipped_body(r, provenance) for r in outcome.rows}
    folder.mkdir(parents=True, exist_ok=True)
    done = Shipped()
    for name, body in bodies.items():
        write_atomic(folder / name, json.dumps(body, indent=2) + "\n")
        done.written.append(folder / name)
    for old in sorted(folder.glob("*.json")):
        if old.name not in bodies:
            old.unlink()
            done.removed.append(old)
    return done
