"""Retrain each row of a frontier record from its spec file and compare with what the row says.

For every row of ``<folder>/frontier.json`` this runs, in its own process,

    mnist-search train --spec <folder>/budget-<B>.json --seeds <row's seeds> --json --quiet

(the spec file the row names, found beside the record, since the record holds the run's own
paths) and prints the row's validation and test mean ± std next to the retrained ones, with the
differences. A spec file reproduces its row when both means agree (on one machine and torch
build the runs are the same runs, seed for seed).

    python benchmarks/reproduce_rows.py FRONTIER_OUT [--budgets 5000,10000]
        [--device cpu] [--out FILE.json]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

from mnist_search.testing import tool_command


def retrain(spec: Path, seeds: int, device: str) -> tuple[dict, float]:
    cmd = tool_command("train", "--json", "--quiet", spec=spec, seeds=seeds, device=device)
    t0 = time.time()
    done = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        sys.exit(f"{' '.join(cmd)} failed ({done.returncode}): {done.stderr.strip()[-300:]}")
    return json.loads(done.stdout.strip().splitlines()[-1]), time.time() - t0


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("folder", type=Path, help="a frontier --out folder (frontier.json, specs)")
    ap.add_argument("--budgets", default=None, help="only these rows, e.g. 5000,10000")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--out", type=Path, default=None, help="write the comparison here (JSON)")
    args = ap.parse_args()
    rows = json.loads((args.folder / "frontier.json").read_text())["rows"]
    if args.budgets:
        keep = {int(b) for b in args.budgets.split(",")}
        rows = [r for r in rows if r["budget"] in keep]
    print(
        "| budget | params | epochs | seeds | row val | retrained val | row test | "
        "retrained test | Δ test | wall |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|")
    results = []
    for r in rows:
        spec = args.folder / Path(r["spec_file"]).name
        got, wall = retrain(spec, r["seeds"], args.device)
        results.append({"row": r, "retrained": got, "wall_seconds": round(wall, 1)})
        print(
            f"| {r['budget']:,} | {r['n_params']:,} | {r['epochs']} | {r['seeds']} | "
            f"{r['val_mean']:.2f} ± {r['val_std']:.2f} | "
            f"{got['val_mean']:.2f} ± {got['val_std']:.2f} | "
            f"{r['test_mean']:.2f} ± {r['test_std']:.2f} | "
            f"{got['test_mean']:.2f} ± {got['test_std']:.2f} | "
            f"{got['test_mean'] - r['test_mean']:+.2f} | {wall:.0f} s |",
            flush=True,
        )
    if args.out:
        args.out.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
