#!/usr/bin/env bash
# Rebuilds docs/results/ from the real MM-IMDb poster subset (official split; the data
# never enters the repo). Run from the repo root after `make setup`:
#   bash docs/results/make.sh [../shared/data/mmimdb-poster-subset]
# Finished runs are skipped, so an interrupted rebuild continues where it stopped.
set -euo pipefail
DATA=${1:-../shared/data/mmimdb-poster-subset}
PY=.venv/bin/python
$PY cli.py extract --data "$DATA" --preset poster-subset --encoder efficientnet-lite0 --out caches
$PY cli.py extract --data "$DATA" --preset poster-subset --encoder minilm --out caches
IMG=$(ls caches/mmimdb-poster-subset-image-efficientnet-lite0-*.h5 | head -1)
TXT=$(ls caches/mmimdb-poster-subset-text-minilm-*.h5 | head -1)
sweep() {  # sweep NAME [extra sweep options]
  local name=$1; shift
  $PY cli.py sweep "$@" -f image="$IMG" -f text="$TXT" --seeds 0,1,2 --jobs 2 --out sweeps/$name
  $PY cli.py report sweeps/$name --out docs/results/$name --top 6
  cp sweeps/$name/summary.md docs/results/$name/summary.md
}
for p in seven-models gmu-paper loss-000 ablation-004; do sweep $p --preset $p; done
sweep loss-000-concat --preset loss-000 --fusion concat  # the same loss ablation on a smaller head
# best multimodal vs best unimodal, paired over seeds and bootstrapped over test movies
mkdir -p docs/results/compare
{
  $PY cli.py compare sweeps/loss-000-concat concat-asl unimodal.text-bce-per_class --b-sweep sweeps/seven-models \
    --json docs/results/compare/concat-asl-vs-text.json
  echo
  $PY cli.py compare sweeps/loss-000-concat concat-asl concat-bce --json docs/results/compare/concat-asl-vs-bce.json
  echo
  $PY cli.py compare sweeps/gmu-paper avg_probs unimodal.text-bce-per_class --b-sweep sweeps/seven-models \
    --json docs/results/compare/avg_probs-vs-text.json
  echo
  $PY cli.py compare sweeps/gmu-paper gmu-bce maxout.text --json docs/results/compare/gmu-vs-maxout-text.json
  echo
  $PY cli.py compare sweeps/seven-models early-concat-bce-per_class unimodal.text-bce-per_class \
    --json docs/results/compare/concat-vs-text.json
} | tee docs/results/compare/compare.txt
