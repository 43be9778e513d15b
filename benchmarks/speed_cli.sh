#!/usr/bin/env bash
# Whole-command wall time of `mmalign benchmark cub --synthetic` per training path, interleaved.
#
#   bash benchmarks/speed_cli.sh EPOCHS ROUNDS [OUT]     e.g. bash benchmarks/speed_cli.sh 10 3
#
# Each round runs every path once, in turn (reference, auto, auto bf16), so drift of a shared
# machine falls on all of them alike; every run is a fresh process (interpreter start, data
# generation, VAE training, latent sampling, classifier). Prints one line per run: wall, user and
# system seconds and peak RSS (GNU time), and the run's U/S/H. Raw lines go to OUT/times.tsv.
set -euo pipefail
EPOCHS=${1:-10}
ROUNDS=${2:-3}
OUT=${3:-runs/speed_cli}
mkdir -p "$OUT"
declare -A FLAGS=(
  [reference]="--engine reference"
  [auto]=""
  [auto-bf16]="--precision bf16"
)
printf 'path\tround\twall_s\tuser_s\tsys_s\tpeak_rss_mb\tU\tS\tH\n' | tee "$OUT/times.tsv"
for round in $(seq 1 "$ROUNDS"); do
  for path in reference auto auto-bf16; do
    dir="$OUT/$path-$round"
    rm -rf "$dir"
    # shellcheck disable=SC2086
    /usr/bin/time -f '%e %U %S %M' -o "$OUT/time.txt" \
      python -m mmalign benchmark cub --synthetic --epochs "$EPOCHS" --out "$dir" --no-progress ${FLAGS[$path]} \
      >"$dir.log" 2>&1
    read -r wall user sys rss <"$OUT/time.txt"
    ush=$(python - "$dir/results.json" <<'PY'
import json, sys
records = json.load(open(sys.argv[1]))
records = records["records"] if isinstance(records, dict) else records
r = records[-1]
m = r.get("metrics", r)
print(f"{m['U']:.1f}\t{m['S']:.1f}\t{m['H']:.1f}")
PY
)
    printf '%s\t%s\t%s\t%s\t%s\t%d\t%s\n' "$path" "$round" "$wall" "$user" "$sys" $((rss / 1024)) "$ush" | tee -a "$OUT/times.tsv"
  done
done
