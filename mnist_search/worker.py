"""Entry point of one worker process: reads {"config": ..., "rank": r} from standard input."""

from __future__ import annotations

import json
import sys

from .engine import SearchConfig, run_worker
from .render import setup_logging


def main() -> None:
    job = json.loads(sys.stdin.read())
    rank = int(job["rank"])
    setup_logging(f"[worker {rank}] ")
    try:
        run_worker(SearchConfig(**job["config"]), rank)
    except KeyboardInterrupt:
        pass  # the trial is marked failed already; the parent prints the summary


if __name__ == "__main__":
    main()
