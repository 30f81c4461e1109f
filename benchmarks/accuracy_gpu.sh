#!/usr/bin/env bash
# The runs behind benchmarks/accuracy.md, on one GPU: for each budget a two-stage search
# (`optimize` for a fixed time at short length, then the best candidate retrained from scratch at
# full length with 3 seeds, chosen and reported as the product reports it). The budgets run at
# once, as separate processes sharing the GPU: each small net alone leaves most of it idle.
#
#   benchmarks/accuracy_gpu.sh OUTDIR
#
# Environment: PYTHON (default python3), DEVICE (default cuda), TOTAL (seconds per budget, both
# stages, default 430), LIMIT (hard stop per budget, default 470), SEED (default 0), ONLY (names
# of the runs to do, e.g. "budget-25000 budget-10000"; default all), QUICK=1 (a CPU dry run of
# the mechanics: tiny subsets, 1-epoch finals).
set -uo pipefail
out=${1:?usage: accuracy_gpu.sh OUTDIR}
mkdir -p "$out"
export PYTHONUNBUFFERED=1 OMP_NUM_THREADS=${OMP_NUM_THREADS:-2}
py=${PYTHON:-python3}
device=${DEVICE:-cuda}
limit=${LIMIT:-470}
date -u +"%Y-%m-%dT%H:%M:%SZ"
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>/dev/null || true
$py -c "import torch, optuna; print('torch', torch.__version__, '| optuna', optuna.__version__)"

# Baseline in the same run: the write-up's best net (Exp6) under its one-epoch protocol.
$py -m mnist_search train --experiment 6 --device "$device" --json ${QUICK:+--train-subset 1000} \
  | tee "$out/baseline-exp6.json" || exit 1

search() {  # name budget seconds search_epochs final_epochs
  # --timeout covers both stages: the search stops when what is left is the final stage's
  # estimated need. LIMIT is a hard stop above it.
  local name=$1 budget=$2 ts=$3 es=$4 ef=$5 extra=()
  if [ -n "${ONLY:-}" ] && [[ " $ONLY " != *" $name "* ]]; then return; fi
  if [ -n "${QUICK:-}" ]; then ts=40; ef=1; extra=(--train-subset 1000); fi
  local start=$SECONDS
  timeout -k 15 -s INT "$limit" $py -m mnist_search optimize --budget "$budget" \
    --epochs "$es" --timeout "$ts" --final-seeds 3 --final-epochs "$ef" --final-top 1 \
    --seed "${SEED:-0}" --device "$device" --study-name "$name" --storage "sqlite:///$out/$name.db" \
    --best-spec "$out/$name-best.json" --artifacts "/tmp/artifacts-$name" "${extra[@]}" \
    > "$out/$name.log" 2>&1
  echo "$name: exit $?, $((SECONDS - start)) s"
}
total=${TOTAL:-430}
search budget-25000 25000 "$total" 2 20 &
search budget-10000 10000 "$total" 2 20 &
search budget-5000 5000 "$total" 2 30 &
search budget-2000 2000 "$total" 2 30 &
search budget-1000 1000 "$total" 2 30 &
search onepoch-25000 25000 "$total" 1 1 &
wait
for f in "$out"/*.log; do echo "== $f"; sed -n '/^final:/,$p' "$f"; done
