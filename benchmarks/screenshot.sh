#!/usr/bin/env bash
# Take the README's screenshots of `obsdb report` (docs/report.png) and of the review desk,
# `obsdb serve` (docs/review.png), from the demo night.
#
#   benchmarks/screenshot.sh [DEMO_DIR] [OUTPUT_PNG] [REVIEW_PNG]
#
# DEMO_DIR   where the demo night, its catalog and the report go [default: /tmp/demo-report];
#            an existing catalog there is reused as it is.
# OUTPUT_PNG the report's screenshot [default: docs/report.png in this repository].
# REVIEW_PNG the review desk's screenshot [default: docs/review.png]: `obsdb serve --read-only` on the
#            demo catalog (its pictures cached in a temporary folder), the V band's review opened on
#            a rejected frame.
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
review_png="${3:-$here/docs/review.png}"
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
trap 'rm -rf "$profile"; [ -n "${server:-}" ] && kill "$server" 2>/dev/null || true' EXIT

shoot() {  # URL PNG [WINDOW]: headless Chromium, every background network feature off
    mkdir -p "$(dirname "$2")"
    "$chromium" --headless --no-sandbox --disable-gpu --disable-quic --no-first-run \
        --disable-background-networking --disable-component-update --disable-sync \
        --hide-scrollbars --user-data-dir="$profile/chromium" --window-size="${3:-$window}" \
        --virtual-time-budget=15000 --screenshot="$2" "$1" 2>/dev/null
    if command -v pngquant >/dev/null 2>&1; then
        pngquant --force --skip-if-larger --quality 70-95 --output "$2" -- "$2" || true
    else
        "$python" - "$2" <<'EOF'
import sys
from PIL import Image

path = sys.argv[1]
Image.open(path).convert("RGB").quantize(colors=256, method=Image.Quantize.MEDIANCUT).save(path, optimize=True)
EOF
    fi
    ls -l "$2"
}

shoot "file://$(cd "$demo/report" && pwd)/index.html" "$png"

# The review desk: served read-only on a free port, the shown frame's pictures drawn before the shot.
port="$("$python" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
$obsdb --db "$db" serve --read-only --port "$port" --author observer --cache "$profile/previews" >/dev/null &
server=$!
for _ in $(seq 100); do
    curl -fs "http://127.0.0.1:$port/" >/dev/null 2>&1 && break
    sleep 0.2
done
night="$(curl -fs "http://127.0.0.1:$port/" | sed -n "s|.*href='/night/\([^']*\)'.*|\1|p" | head -1)"
frame="$($obsdb --db "$db" frames --band V --status rejected --format json \
         | "$python" -c 'import json, sys; r = json.load(sys.stdin); print(r[0]["id"] if r else "")')"
url="http://127.0.0.1:$port/review/$night/V${frame:+?frame=$frame}"
curl -fs "$url" >/dev/null
if [ -n "$frame" ]; then
    curl -fs "http://127.0.0.1:$port/frame/$frame.png" -o /dev/null || true
    curl -fs "http://127.0.0.1:$port/frame/$frame/stars.png" -o /dev/null || true
fi
shoot "$url" "$review_png" "${REVIEW_WINDOW:-1400,900}"
