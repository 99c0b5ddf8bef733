#!/usr/bin/env bash
# Rebuilds docs/results/ from the real MM-IMDb poster subset (official split; the data
# never enters the repo). Run from the repo root after `make setup`:
#   bash docs/results/make.sh [../shared/data/mmimdb-poster-subset]
set -euo pipefail
DATA=${1:-../shared/data/mmimdb-poster-subset}
PY=.venv/bin/python
$PY cli.py extract --data "$DATA" --preset poster-subset --encoder efficientnet-lite0 --out caches
$PY cli.py extract --data "$DATA" --preset poster-subset --encoder minilm --out caches
IMG=$(ls caches/mmimdb-poster-subset-image-efficientnet-lite0-*.h5 | head -1)
TXT=$(ls caches/mmimdb-poster-subset-text-minilm-*.h5 | head -1)
for p in seven-models gmu-paper loss-000 ablation-004; do
  $PY cli.py sweep --preset $p -f image="$IMG" -f text="$TXT" --seeds 0,1,2 --jobs 2 --out sweeps/$p
  $PY cli.py report sweeps/$p --out docs/results/$p --top 6
  cp sweeps/$p/summary.md docs/results/$p/summary.md
done
