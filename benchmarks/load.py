"""Load test: 16 (or more) worker processes at once on one study in a throwaway PostgreSQL
server, a few killed with SIGKILL mid-trial; then a sweep. Prints what became of every trial.

    python benchmarks/load.py [--workers 16] [--trials 5] [--kills 4] [--data-dir DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from datetime import date

from mnist_search.testing import check, run_load, throwaway_postgres


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--workers", type=int, default=16)
    ap.add_argument("--trials", type=int, default=5)
    ap.add_argument("--kills", type=int, default=4)
    ap.add_argument("--data-dir", default=os.environ.get("MNIST_SEARCH_DATA"))
    args = ap.parse_args()
    if not args.data_dir:
        sys.exit("give --data-dir or set MNIST_SEARCH_DATA")
    with throwaway_postgres() as url, tempfile.TemporaryDirectory() as tmp:
        r = run_load(
            url, args.data_dir, tmp, workers=args.workers, trials=args.trials, kills=args.kills
        )
    print(json.dumps(r, indent=1))
    check(r)
    print(
        f"{date.today()}: {r['workers']} workers on PostgreSQL, {r['trials']} trials "
        f"({r['states']}), {r['kills']} killed with SIGKILL, {len(r['failed'])} failed and "
        f"each retried once, lost 0, {r['seconds']} s"
    )


if __name__ == "__main__":
    main()
