#!/usr/bin/env bash
# The GPU check, on a machine with an NVIDIA GPU after `make setup` (under 8 minutes on one GPU):
#   1. training samples/s of each model family (CNN, EfficientNet-Lite0, LSTM, Transformer) in
#      32-true and bf16-mixed (bf16 where the hardware computes it natively), Podium against a hand-written loop, with torch's peak GPU memory;
#   2. a 1-GPU `trainer=ddp` training of the CNN: its out-of-fold ids, each training row once,
#      in the prepared data's order, and its test ids likewise;
#   3. the GPU's memory as nvidia-smi reports it at the end.
#
#   bash benchmarks/gpu_check.sh          # on the GPU
#   bash benchmarks/gpu_check.sh --cpu    # the same steps on the CPU, shrunk
#   GPU_CHECK_FAMILIES=cnn bash benchmarks/gpu_check.sh --cpu   # step 1 for these families only (the test suite's run)
#
# It builds the demo data and prepares the demo competitions it needs (animals; rotten-tomatoes for
# the text families) if they are not there yet, in the project at $PODIUM_ROOT (default: this checkout).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}
export PODIUM_ROOT=${PODIUM_ROOT:-$PWD}
started=$SECONDS

if [[ "${1:-}" == "--cpu" ]]; then
  accelerator=cpu; scale=0.1; repeats=1
  ddp=(trainer=ddp trainer.accelerator=cpu trainer.devices=1 trainer.sync_batchnorm=false trainer.deterministic=true
       trainer.limit_train_batches=5 competition.cv.n_splits=2)  # 2 folds: every row still predicted once
else
  accelerator=gpu; scale=3; repeats=2
  ddp=(trainer=ddp trainer.devices=1)
  nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader
fi

read -r -a families <<< "${GPU_CHECK_FAMILIES:-cnn efficientnet lstm transformer}"
competitions=(animals)  # step 2 trains the CNN on it
[[ " ${families[*]} " =~ \ (lstm|transformer)\  ]] && competitions+=(rotten-tomatoes)  # the text families'
echo "== data: ${competitions[*]}, prepared"
for competition in "${competitions[@]}"; do
  [[ -d "$PODIUM_ROOT/data/$competition/raw" ]] || "$PY" "competitions/$competition/build.py" --out "$PODIUM_ROOT/data/$competition"
  "$PY" -m pipeline --quiet prepare "competition=$competition"
done

echo "== 1. training throughput per family ($accelerator)"
"$PY" benchmarks/training_speed.py --accelerator "$accelerator" --scale "$scale" --repeats "$repeats" --families "${families[@]}"

echo "== 2. a 1-device DDP training: out-of-fold and test ids"
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
"$PY" -m pipeline --quiet train competition=animals model=cnn "train.seeds=[0]" train.estimate=false trainer.max_epochs=1 "${ddp[@]}" \
  tracking.enabled=false train.resume=false "out_dir=$scratch/ddp" "paths.checkpoints=$scratch/checkpoints" > /dev/null
"$PY" - "$scratch/ddp" <<'PYTHON'
import sys
from pathlib import Path

import pandas as pd

from pipeline.config import compose
from pipeline.io import prepared_dir

out = Path(sys.argv[1])
cfg = compose(["competition=animals"])
for split, name in (("train", "oof"), ("test", "test")):
    expected = pd.read_parquet(prepared_dir(cfg) / f"{split}.parquet")["id"]
    got = pd.read_parquet(out / f"{name}.parquet")["id"]
    once = got.is_unique and len(got) == len(expected)
    ordered = got.tolist() == expected.tolist()
    print(f"{name}: {len(got):,} rows for {len(expected):,} {split} ids; each id once: {once}; prepared order: {ordered}")
    if not (once and ordered):
        sys.exit(f"{name}.parquet of the DDP run does not hold each {split} id once, in order")
PYTHON

if [[ $accelerator == gpu ]]; then
  echo "== 3. GPU memory"
  nvidia-smi --query-gpu=memory.used,memory.total --format=csv
fi
echo "gpu_check: done in $((SECONDS - started)) s"
