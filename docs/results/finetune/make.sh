#!/usr/bin/env bash
# Fine-tuning vs heads on cached features, real MM-IMDb poster subset (official split; the data
# never enters the repo). Offline encoders: EfficientNet-Lite0 (posters) + MiniLM (plots, first
# 128 tokens). Run from the repo root after `make setup`:
#   bash docs/results/finetune/make.sh [../shared/data/mmimdb-poster-subset] [SEEDS]
# Finished runs are "up to date", so an interrupted rebuild continues where it stopped.
set -euo pipefail
DATA=${1:-../shared/data/mmimdb-poster-subset}
SEEDS=${2:-0 1 2}
# seeds of the slowest configurations (both backbones last:2, full MiniLM, the CNN from scratch);
# docs/results/finetune/ was made with SLOW_SEEDS=0 to fit the time at hand on 2 CPU cores
SLOW_SEEDS=${SLOW_SEEDS:-$SEEDS}
PY=.venv/bin/python
SW=sweeps/finetune
CACHES=${CACHES:-caches}
seeds() { for s in $1; do printf -- "--seed %s " "$s"; done; }
ft() {  # ft [finetune flags]: one configuration, every seed, recorded in the sweep folder
  $PY cli.py finetune --data "$DATA" --preset poster-subset --cache-dir "$CACHES" --sweep-dir $SW --quiet \
    --loss asl --batch-size 32 --max-epochs 4 --patience 2 --head-lr 1e-3 --backbone-lr 5e-5 $(seeds "$SEEDS") "$@"
}
ft_slow() { SEEDS=$SLOW_SEEDS ft "$@"; }
IMG=(--image-encoder efficientnet-lite0)
TXT=(--text-encoder minilm --text-opt max_length=128)
# frozen backbones, the head trained with the same settings as the fine-tuning runs
ft "${IMG[@]}" --image-unfreeze none "${TXT[@]}" --text-unfreeze none --fusion concat
# the best head on the same frozen caches with train-head's own defaults (200 epochs max, patience 5)
FROZEN=$(ls -d $SW/runs/ft-concat-image.efficientnet-lite0.none+text.minilm.none-*-s0-* | head -1)
feature() { $PY -c "import json; print(json.load(open('$FROZEN/config.json'))['config']['features']['$1'])"; }
$PY cli.py sweep -f image="$(feature image)" -f text="$(feature text)" --fusion concat --loss asl \
  --seeds "$(echo $SEEDS | tr ' ' ',')" --out $SW --quiet
# partial fine-tuning: the last 1 and 2 blocks of each backbone, separately and together
for n in 1 2; do
  ft "${IMG[@]}" --image-unfreeze none "${TXT[@]}" --text-unfreeze last:$n --fusion concat
  ft "${IMG[@]}" --image-unfreeze last:$n "${TXT[@]}" --text-unfreeze none --fusion concat
done
# trained from scratch, one modality each (paper 001's baselines)
ft --text-encoder lstm --fusion linear --head-opt solver=adamw --head-lr 3e-4 --backbone-lr 3e-4 --max-epochs 8
# full fine-tuning of MiniLM (every layer and the embeddings)
ft_slow "${IMG[@]}" --image-unfreeze none "${TXT[@]}" --text-unfreeze all --fusion concat
ft_slow --image-encoder cnn --image-opt size=112 --fusion linear --head-opt solver=adamw --head-lr 3e-4 --backbone-lr 3e-4 --max-epochs 3
# both backbones together
ft "${IMG[@]}" --image-unfreeze last:1 "${TXT[@]}" --text-unfreeze last:1 --fusion concat
ft_slow "${IMG[@]}" --image-unfreeze last:2 "${TXT[@]}" --text-unfreeze last:2 --fusion concat
$PY cli.py report $SW --out docs/results/finetune --top 6
cp $SW/summary.md docs/results/finetune/summary.md
$PY docs/results/finetune/tradeoff.py $SW docs/results/finetune/tradeoff.png
