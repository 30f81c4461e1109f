#!/usr/bin/env bash
# The GPU benchmark set, in one call, in under 5 minutes on an H100/H200. Run from the repository
# root with the package installed; MNIST_SEARCH_DATA may point at a folder of the IDX files.
set -euo pipefail
export PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader || true
python benchmarks/trainer_vs_seed.py --device cuda --images 55000 --runs 3 --full-epoch
python benchmarks/fused_vs_sequential.py --device cuda --k 4,16 --images 55000 --runs 3
python benchmarks/trials_per_hour.py --device cuda --seconds 60
python benchmarks/trials_per_hour.py --device cuda --seconds 60 --parallel 4
