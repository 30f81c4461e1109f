#!/usr/bin/env bash
# The frontier on the CPU: the five default budgets from one command. Its frontier.md is what
# benchmarks/accuracy.md holds. The study and the outputs live under $RUNS (default
# $HOME/runs), outside the checkout, so a stopped run resumes with the same command; the log is
# appended to $RUNS/frontier.log.
#
#   benchmarks/frontier_cpu.sh [SECONDS] [more frontier options, e.g. --warm-start none]
set -euo pipefail
export PYTHONUNBUFFERED=1
cd "$(dirname "$0")/.."
runs=${RUNS:-$HOME/runs}
seconds=${1:-9000}
shift || true
mkdir -p "$runs"
date -u +"start: %Y-%m-%d %H:%M UTC" | tee -a "$runs/frontier.log"
python -m mnist_search frontier --budgets 1000,2000,5000,10000,25000 --timeout "$seconds" \
  --out "$runs/frontier" --storage "sqlite:///$runs/frontier.db" --device cpu \
  --target-accuracy 99.0 "$@" 2>&1 | tee -a "$runs/frontier.log"
date -u +"end: %Y-%m-%d %H:%M UTC" | tee -a "$runs/frontier.log"
