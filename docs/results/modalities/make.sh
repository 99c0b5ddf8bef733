#!/usr/bin/env bash
# Beyond poster and plot, real MM-IMDb poster subset (official split 3,380 / 549 / 1,634; tune
# on dev, report on test; the data never enters the repo). Modalities: the poster
# (EfficientNet-Lite0), the one-sentence overview (MiniLM, "plot"), the longer plot of
# metadata.csv (MiniLM, "long_plot"), the text printed on the poster (RapidOCR, then MiniLM,
# "poster_text"), metadata as TF-IDF multi-hot ("meta", with and without keywords) and as
# knowledge-graph embeddings ("kg", RotatE / TransE). Run from the repo root after `make setup`:
#   bash docs/results/modalities/make.sh [../shared/data/mmimdb-poster-subset] [SEEDS]
# Finished caches and runs are "up to date", so an interrupted rebuild continues where it stopped.
set -euo pipefail
DATA=${1:-../shared/data/mmimdb-poster-subset}
SEEDS=${2:-0,1,2}
PY=.venv/bin/python
CACHES=${CACHES:-caches}
SW=${SW:-sweeps/modalities}
OUT=docs/results/modalities
# extract [flags] -> the cache path (made now, or already there)
extract() { $PY cli.py extract --preset poster-subset --data "$DATA" --out "$CACHES" "$@" \
            | tee /dev/stderr | grep -oE "[^ ]+\.h5" | tail -1; }
IMG=$(extract --encoder efficientnet-lite0)
PLOT=$(extract --encoder minilm)
LONG=$(extract --encoder minilm --text-field meta_plot)
META=$(extract --encoder multihot)
META_NOKW=$(extract --encoder multihot -o 'fields=["director","cast","writer","producer","companies","countries","languages"]')
# every run: ASL, lr 3e-4 (the fusions with metadata overfit in 2-3 epochs at 1e-3), per-genre thresholds on dev
sweep() { $PY cli.py sweep --out "$SW" --seeds "$SEEDS" --loss asl --set lr=3e-4 --quiet "$@"; }
# one modality alone (an MLP)
sweep --fusion mlp --feature-set poster=image=$IMG --feature-set plot=text=$PLOT \
  --feature-set long_plot=long_plot=$LONG --feature-set meta=meta=$META --feature-set meta_nokw=meta=$META_NOKW
# fusions
sweep --fusion gmu --fusion concat \
  --feature-set poster+plot=image=$IMG,text=$PLOT \
  --feature-set poster+plot+meta=image=$IMG,text=$PLOT,meta=$META \
  --feature-set poster+plot+meta_nokw=image=$IMG,text=$PLOT,meta=$META_NOKW \
  --feature-set poster+plot+long_plot+meta=image=$IMG,text=$PLOT,long_plot=$LONG,meta=$META \
  --feature-set poster+plot+long_plot+meta_nokw=image=$IMG,text=$PLOT,long_plot=$LONG,meta=$META_NOKW
# knowledge-graph embeddings of the metadata (genre links from train only): RotatE (the paper's
# best) and TransE; a movie = the sum of its directors' and actors' entity vectors (eq. 3-4)
KG=$(extract --encoder kg)
KG_TRANSE=$(extract --encoder kg -o model=transe)
sweep --fusion mlp --feature-set kg_rotate=kg=$KG --feature-set kg_transe=kg=$KG_TRANSE
sweep --fusion gmu --feature-set poster+plot+kg=image=$IMG,text=$PLOT,kg=$KG
# IDKG (paper 002) at the idkg preset's settings on poster + plot + kg (RotatE): Table 3's
# ablation (Attention Teacher and G-CACL on/off), seed 0 (`--preset idkg` alone runs every row
# of the preset, random anchors and tau included, at $SEEDS)
$PY cli.py sweep --preset idkg --out "$SW-idkg" --seeds 0 --quiet --fusion idkg \
  -o idkg:at_weight=0,1 -o idkg:contrast_weight=0,1 --feature-set rotate=image=$IMG,text=$PLOT,kg=$KG
# the text printed on the posters: OCR once (RapidOCR, resumable), then MiniLM on it
OCR_TABLE=$($PY cli.py ocr --preset poster-subset --data "$DATA" --out "$CACHES" --quiet | tee /dev/stderr \
            | grep -oE "[^ ]+-ocr-[^ ]+\.csv" | head -1)
OCRT=$(extract --encoder minilm --text-file "$OCR_TABLE" --text-field poster_text)
sweep --fusion mlp --feature-set poster_text=poster_text=$OCRT
sweep --fusion gmu --feature-set poster+poster_text=image=$IMG,poster_text=$OCRT \
  --feature-set poster+plot+poster_text=image=$IMG,text=$PLOT,poster_text=$OCRT
# modality dropout, then the missing-modality curves (Ma et al. 2022 / Lee et al. 2023 protocol)
sweep --fusion gmu --fusion concat --set modality_dropout=0.3 --feature-set poster+plot=image=$IMG,text=$PLOT
pick() { $PY $OUT/pick.py "$@"; }
RATIOS=0,0.1,0.3,0.5,0.7,0.9
$PY cli.py evaluate $(pick "$SW" poster+plot gmu) $(pick "$SW" poster+plot concat) \
  $(pick "$SW" poster+plot gmu modality_dropout=0.3) $(pick "$SW" poster+plot concat modality_dropout=0.3) \
  --missing image:$RATIOS --missing text:$RATIOS --missing both:$RATIOS --out "$SW-missing" \
  --plot $OUT/missing_poster_plot.png | tee $OUT/missing_poster_plot.md
$PY cli.py evaluate $(pick "$SW-idkg" rotate idkg.at_weight=1.contrast_weight=1) $(pick "$SW" poster+plot+kg gmu) \
  --missing image:$RATIOS --missing text:$RATIOS --missing kg:$RATIOS --out "$SW-missing" \
  --plot $OUT/missing_poster_plot_kg.png | tee $OUT/missing_poster_plot_kg.md
cp "$SW/summary.md" $OUT/summary.md
cp "$SW-idkg/summary.md" $OUT/summary_idkg.md
