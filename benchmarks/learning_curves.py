"""How much a net's validation error falls when it trains E epochs instead of one, measured on
the final stages of runs already made: the figure behind ``final_time.LEARNING_CURVE_EXPONENT``.

From each log of ``optimize`` or ``frontier`` given, every finalist that a time-set final stage
retrained (``final stage: trial N gets E epoch(s)``) is paired with its own one-epoch search
trial; the exponent ``a`` in ``error(E) = error(1) × E^-a`` is ``ln(err1 / errE) / ln(E)``, with
``errE`` the mean over the finalist's seeds. Printed: one line per finalist and the medians.

    python benchmarks/learning_curves.py benchmarks/runs/2026-12-02-frontier-five-budgets/frontier.log ...
"""

from __future__ import annotations

import math
import re
import statistics
import sys

SECTION = re.compile(r"frontier: budget ([\d,]+) gets")
TRIAL = re.compile(r"trial (\d+) COMPLETE: val ([\d.]+)% \| ([\d,]+) params")
PLAN = re.compile(r"final stage: trial (\d+) gets (\d+) epoch")
FINAL = re.compile(r"final run \d+ \(trial (\d+), seed \d+\) COMPLETE: val ([\d.]+)%")


def finalists(path: str) -> list[dict]:
    """(one-epoch val, params, epochs, final val mean) of each retrained finalist in a log."""
    one: dict = {}
    plan: dict = {}
    final: dict = {}
    section = ""
    with open(path, encoding="utf-8") as f:
        for line in f:
            if m := SECTION.match(line):
                section = m.group(1)
            elif m := TRIAL.match(line):
                one[section, int(m.group(1))] = (
                    float(m.group(2)),
                    int(m.group(3).replace(",", "")),
                )
            elif m := PLAN.match(line):
                plan[section, int(m.group(1))] = int(m.group(2))
            elif m := FINAL.match(line):
                final.setdefault((section, int(m.group(1))), []).append(float(m.group(2)))
    out = []
    for key, epochs in plan.items():
        if key in one and key in final and epochs > 1:
            val1, params = one[key]
            valE = statistics.mean(final[key])
            a = math.log((100 - val1) / (100 - valE)) / math.log(epochs)
            out.append(
                {
                    "log": path,
                    "trial": key[1],
                    "params": params,
                    "one_epoch": val1,
                    "epochs": epochs,
                    "final": valE,
                    "exponent": a,
                }
            )
    return out


def main() -> None:
    rows = [r for path in sys.argv[1:] for r in finalists(path)]
    if not rows:
        sys.exit("no retrained finalists in the logs given")
    print("| log | trial | params | one-epoch val | epochs | final val (seed mean) | exponent |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['log']} | {r['trial']} | {r['params']:,} | {r['one_epoch']:.2f} | "
            f"{r['epochs']} | {r['final']:.2f} | {r['exponent']:.2f} |"
        )
    a = [r["exponent"] for r in rows]
    big = [r["exponent"] for r in rows if r["params"] >= 4000]
    small = [r["exponent"] for r in rows if r["params"] < 4000]
    print(
        f"\n{len(a)} finalists: median exponent {statistics.median(a):.3f} "
        f"(range {min(a):.2f}-{max(a):.2f})"
    )
    for name, xs in (("≥ 4,000 parameters", big), ("< 4,000 parameters", small)):
        if xs:
            print(f"{name}: {len(xs)} finalists, median {statistics.median(xs):.3f}")


if __name__ == "__main__":
    main()
