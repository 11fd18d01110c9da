#!/usr/bin/env bash
# Trains the two shipped models on generated data, copies them into models/ and measures them
# for the model card (models/README.md, models/metrics.json).
# On 2 CPU cores the indoor model took about 8 1/4 hours; the street model trains 3 shorter epochs.
# Needs ../shared/weights for the ImageNet initialisation and ../shared/data for the real-frame metrics.
set -euo pipefail
cd "$(dirname "$0")/.."
hydranet=.venv/bin/hydranet
synth() {  # kind, name, count, seed; generation is deterministic, so an existing folder is reused
  [ -f "datasets/$2/dataset.yaml" ] || $hydranet synth "$1" --out "datasets/$2" --count "$3" --seed "$4"
}
synth indoor synth_indoor_train 3000 1
synth indoor synth_indoor_val 200 2
synth street synth_street_train 2000 1
synth street synth_street_val 200 2
synth indoor synth_indoor_test 200 3  # test frames: measured only, never used to choose an epoch
synth street synth_street_test 200 3
# The shipped indoor run was eight jobs, each continuing the last one's checkpoint with a longer
# schedule (models/README.md); these replay it. One plain job would be: train CONFIG.
$hydranet train config/train_indoor_synth.yaml --epochs 10 --stop-after 5
$hydranet train config/train_indoor_synth.yaml --epochs 12 --resume
$hydranet train config/train_indoor_synth.yaml --epochs 24 --resume
$hydranet train config/train_indoor_synth.yaml --epochs 28 --resume
$hydranet train config/train_indoor_synth.yaml --epochs 40 --resume
$hydranet train config/train_indoor_synth.yaml --epochs 46 --resume
$hydranet train config/train_indoor_synth.yaml --epochs 60 --resume
$hydranet train config/train_indoor_synth.yaml --resume
cp runs/indoor/best.pt models/hydranet_indoor.pt
$hydranet train config/train_street_synth.yaml
cp runs/street/best.pt models/hydranet_street.pt
.venv/bin/python scripts/model_card_metrics.py
