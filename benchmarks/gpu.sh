#!/usr/bin/env bash
# The GPU benchmark set, one command, about 5 minutes on an H100/H200. Run from the repository
# root with the package installed; MNIST_SEARCH_DATA may point at a folder of the IDX files.
#
#   benchmarks/gpu.sh            # on the GPU
#   benchmarks/gpu.sh --quick    # a dry run of every step on the CPU, tiny sizes (about 2 min)
#
# Prints: the Exp5 net's full-MNIST epoch (trainer_vs_seed.py --full-epoch); fused K = 1, 4, 16,
# 64 of a default-space net against sequential runs; trials per hour of a one-epoch
# `optimize --budget 25000` search with 1 worker and with 4; the GPU's utilisation during those
# searches (nvidia-smi, sampled every 0.5 s).
set -euo pipefail
export PYTHONUNBUFFERED=1
cd "$(dirname "$0")/.."
if [[ "${1:-}" == "--quick" ]]; then
  dev=cpu; seconds=25; fused=(--quick --device cpu); epoch=(--device cpu --images 512 --runs 1)
  subset=(--train-subset 1024)
else
  dev=cuda; seconds=60; fused=(--device cuda --images 12800)
  epoch=(--device cuda --images 12800 --runs 3 --full-epoch)
  subset=()
fi
date -u +"date: %Y-%m-%d %H:%M UTC"
python -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda)"
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>/dev/null \
  || echo "no nvidia-smi: CPU run"
python benchmarks/trainer_vs_seed.py "${epoch[@]}"
python benchmarks/fused_vs_sequential.py "${fused[@]}"
util=$(mktemp)
if command -v nvidia-smi >/dev/null && [[ $dev == cuda ]]; then
  nvidia-smi --query-gpu=utilization.gpu --format=csv,noheader,nounits -lms 500 >"$util" &
  smi=$!
fi
for workers in 1 4; do
  python benchmarks/trials_per_hour.py --device "$dev" --seconds "$seconds" --workers "$workers" \
    "${subset[@]}"
done
if [[ -n "${smi:-}" ]]; then
  kill "$smi" || true
  python - "$util" <<'PY'
import statistics, sys
v = [float(x) for x in open(sys.argv[1]) if x.strip().replace(".", "").isdigit()]
print(f"GPU utilisation while searching: mean {statistics.mean(v):.0f}%, median "
      f"{statistics.median(v):.0f}% over {len(v)} samples" if v else "no utilisation samples")
PY
fi
