#!/usr/bin/env bash
# Trains the two shipped models on generated data and copies them into models/.
# About 1 h on 2 CPU cores. Needs ../shared/weights for the ImageNet initialisation.
set -euo pipefail
cd "$(dirname "$0")/.."
hydranet=.venv/bin/hydranet
$hydranet synth indoor --out datasets/synth_indoor_train --count 2000 --seed 1
$hydranet synth indoor --out datasets/synth_indoor_val --count 200 --seed 2
$hydranet synth street --out datasets/synth_street_train --count 2000 --seed 1
$hydranet synth street --out datasets/synth_street_val --count 200 --seed 2
$hydranet train config/train_indoor_synth.yaml
$hydranet train config/train_street_synth.yaml
cp runs/indoor/best.pt models/hydranet_indoor.pt
cp runs/street/best.pt models/hydranet_street.pt
