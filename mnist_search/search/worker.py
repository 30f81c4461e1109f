"""Entry point of one worker process: reads {"config": ..., "rank": r} from standard input."""

from __future__ import annotations

import json
import sys

from mnist_search.search.config import Resolved
from mnist_search.search.engine import run_worker
from mnist_search.search.progress import setup_logging
from mnist_search.stopping import obey_the_parent


def main() -> None:
    obey_the_parent()  # the parent forwards SIGTERM and SIGHUP as SIGINT; either works
    job = json.loads(sys.stdin.read())
    rank = int(job["rank"])
    setup_logging(f"[worker {rank}] ")
    try:
        run_worker(Resolved.from_json(job["config"]), rank)
    except KeyboardInterrupt:
        pass  # the trial is marked failed already; the parent prints the summary


if __name__ == "__main__":
    main()
