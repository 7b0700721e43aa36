#!/usr/bin/env bash
# The whole offline rehearsal of a code competition, which CI leaves out (it builds a wheelhouse of the
# pinned stack, 356 MB of wheels for the demos, on every run): bundle a trained competition with --wheels,
# install a fresh virtual environment from the bundle's wheels alone (pip --isolated --no-index: no index,
# no pip config), and run the bundle's predict.py from an empty folder with an empty environment (env -i),
# an empty HOME and Hugging Face offline. Its submission must equal the pipeline's, byte for byte. Prints
# each step's time.
#
# usage: benchmarks/rehearse_offline.sh [PROJECT] [COMPETITION]   (defaults: this checkout, animals)
# PROJECT is a project root whose competition has been through `dvc repro` (or train, ensemble, submit).
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
project=$(cd "${1:-$here}" && pwd)
competition=${2:-animals}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
base=$("$here/.venv/bin/python" -c 'import sys; print(sys._base_executable)')
seconds() { date +%s.%N; }
took() { awk -v a="$1" -v b="$(seconds)" 'BEGIN { printf "%.0f s", b - a }'; }

t=$(seconds)
PODIUM_ROOT=$project "$here/.venv/bin/podium" bundle "competition=$competition" --out "$work/bundle" --wheels
echo "bundle with wheels: $(took "$t"); $(du -sh "$work/bundle" | cut -f1) in all, wheels $(du -sh "$work/bundle/wheels" | cut -f1)"

t=$(seconds)
env -i PATH=/usr/bin:/bin HOME="$work/home" "$base" -m venv "$work/venv"
env -i PATH=/usr/bin:/bin HOME="$work/home" "$work/venv/bin/pip" install --isolated --no-index --quiet \
    --find-links "$work/bundle/wheels" --requirement "$work/bundle/requirements.txt"
echo "fresh venv from the wheelhouse alone: $(took "$t"), $(du -sh "$work/venv" | cut -f1)"

raw=$project/data/$competition/raw
mkdir -p "$work/run" "$work/home"
cp "$raw/test.csv" "$work/run/test.csv"
if [ -d "$raw/images" ]; then cp -r "$raw/images" "$work/run/images"; fi
t=$(seconds)
(cd "$work/run" && env -i PATH="$work/venv/bin:/usr/bin:/bin" HOME="$work/home" HF_HUB_OFFLINE=1 \
    TRANSFORMERS_OFFLINE=1 "$work/venv/bin/python" "$work/bundle/predict.py" --test test.csv --out submission.csv)
echo "predict.py in the fresh venv: $(took "$t")"

expected=$project/submissions/$competition/submission.csv
if cmp -s "$work/run/submission.csv" "$expected"; then
    echo "OK: the offline submission equals $expected byte for byte"
else
    echo "DIFFERENT: the offline submission differs from $expected" >&2
    exit 1
fi
