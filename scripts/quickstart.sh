#!/usr/bin/env bash
# From a fresh clone to generated faces: install, draw demo faces, preprocess, train briefly, sample.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ ! -x .venv/bin/python ]; then
    python3 -m venv .venv
fi
.venv/bin/python -m pip install --quiet --upgrade pip
.venv/bin/python -m pip install --quiet -e .
animegan=.venv/bin/animegan

$animegan demo-data demo/ --n 2000
$animegan preprocess demo/ demo-face/ --config demo
run=quickstart-$(date +%Y%m%d-%H%M%S)
$animegan train --config demo --name "$run"
grid=$($animegan sample --run "runs/$run" --n 16 --scale 2)
echo
echo "Done. The run is in runs/$run (samples/, losses.png, progress.gif); 16 new faces: $grid"
