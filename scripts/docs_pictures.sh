#!/usr/bin/env bash
# Retake the README's pictures from a real `make demo` run:
#   docs/images/tensorboard-rewards.png  TensorBoard's time series of the reward curves
#   docs/images/summary.svg              `gemmalog summary` of the run, as the terminal shows it
#   docs/images/report.png               the HTML report (`gemmalog report`) in Chromium
# Needs the venv (make venv) and Debian's chromium. Usage: scripts/docs_pictures.sh
set -euo pipefail
cd "$(dirname "$0")/.."
PY=.venv/bin/python
work=$(mktemp -d)
trap 'kill "${tb_pid:-0}" 2>/dev/null || true; rm -rf "$work"' EXIT
$PY examples/demo.py --root "$work/runs" > "$work/demo.log" 2>&1
run=$(ls -d "$work"/runs/demo-*/ | head -n 1)
chrome() {
  chromium --headless --no-sandbox --disable-gpu --disable-quic --no-first-run \
    --disable-background-networking --disable-component-update --disable-sync \
    --user-data-dir="$work/chrome" "$@" 2>/dev/null
}
# TensorBoard names a run after its directory below --logdir.
mkdir -p "$work/tb" && ln -s "$run/logs/tensorboard" "$work/tb/demo"
.venv/bin/tensorboard --logdir "$work/tb" --port 6077 > "$work/tb.log" 2>&1 & tb_pid=$!
sleep 8
# forceSVG: headless Chromium has no WebGL, which TensorBoard's line charts use by default.
chrome --window-size=1400,950 --virtual-time-budget=20000 --screenshot=docs/images/tensorboard-rewards.png \
  "http://localhost:6077/?forceSVG=true&tagFilter=train%2Frewards%2F.*%2Fmean%7Ctrain%2Freward%24#timeseries"
COLUMNS=90 FORCE_COLOR=1 .venv/bin/gemmalog summary "$run" > "$work/summary.ansi"
$PY - "$work/summary.ansi" <<'PY'
import sys
from rich.console import Console
from rich.text import Text
console = Console(record=True, width=90, force_terminal=True, file=open("/dev/null", "w"))
console.print(Text.from_ansi(open(sys.argv[1], encoding="utf-8").read()))
console.save_svg("docs/images/summary.svg", title="gemmalog summary runs/demo-…")
PY
.venv/bin/gemmalog report "$run" -o "$work/report.html"
chrome --window-size=1280,2600 --screenshot=docs/images/report.png "file://$work/report.html"
echo "pictures retaken from $run"
