#!/usr/bin/env bash
# Take the README's screenshot of `obsdb report` (docs/report.png) from the demo night.
#
#   benchmarks/screenshot.sh [DEMO_DIR] [OUTPUT_PNG]
#
# DEMO_DIR   where the demo night, its catalog and the report go [default: /tmp/demo-report];
#            an existing catalog there is reused as it is.
# OUTPUT_PNG the screenshot [default: docs/report.png in this repository].
# Environment: OBSDB (the obsdb command, default `obsdb`), CHROMIUM (default `chromium`),
# WINDOW (default 1400,1800: the width the browser test checks), PYTHON (for the PNG palette fallback, default python3).
#
# Headless Chromium with every background network feature off, so the page is
# rendered from local files only; the PNG is then reduced to a 256-colour palette
# (pngquant when present, else Pillow) to stay small in the repository.
set -euo pipefail

here="$(cd "$(dirname "$0")/.." && pwd)"
demo="${1:-/tmp/demo-report}"
png="${2:-$here/docs/report.png}"
obsdb="${OBSDB:-obsdb}"
chromium="${CHROMIUM:-chromium}"
window="${WINDOW:-1400,1800}"
python="${PYTHON:-python3}"
db="$demo/obsdb.sqlite"

if [ ! -f "$db" ]; then
    $obsdb --db "$db" demo --out "$demo"
    # The demo pipeline may not align or render yet; do it here so the page shows a shift
    # track and the stacks, and add one manual decision so the rejected table shows a
    # person's reason.
    if ! $obsdb --db "$db" frames --format json | grep -q '"run": [0-9]'; then
        $obsdb --db "$db" group auto
        $obsdb --db "$db" align --method auto
        $obsdb --db "$db" align --method staged || true
    fi
    if ! ls "$demo"/*/stack_*.fits >/dev/null 2>&1; then
        $obsdb --db "$db" render --out "$demo/rendered" --stack median
    fi
    $obsdb --db "$db" tag 1005 tracking-slight --author observer \
        --reason "stars slightly doubled on inspection in ds9"
fi
$obsdb --db "$db" report --out "$demo/report"

profile="$(mktemp -d)"
trap 'rm -rf "$profile"' EXIT
mkdir -p "$(dirname "$png")"
"$chromium" --headless --no-sandbox --disable-gpu --disable-quic --no-first-run \
    --disable-background-networking --disable-component-update --disable-sync \
    --hide-scrollbars --user-data-dir="$profile" --window-size="$window" \
    --screenshot="$png" "file://$(cd "$demo/report" && pwd)/index.html" 2>/dev/null

if command -v pngquant >/dev/null 2>&1; then
    pngquant --force --skip-if-larger --quality 70-95 --output "$png" -- "$png" || true
else
    "$python" - "$png" <<'EOF'
import sys
from PIL import Image

path = sys.argv[1]
Image.open(path).convert("RGB").quantize(colors=256, method=Image.Quantize.MEDIANCUT).save(path, optimize=True)
EOF
fi
ls -l "$png"
