#!/usr/bin/env bash
# One short GPU check of the speed paths (under 8 minutes in total on one H100).
#
#   bash benchmarks/gpu_check.sh            # from the repository root; results in $OUT (or ./runs/gpu)
#
# Installs nothing. Needs torch with CUDA, and mmalign's pure-Python dependencies (pluggy, pydantic,
# safetensors, numpy, scipy, tqdm) importable; mmalign itself is taken from this checkout.
# Steps (each under its own time limit, so the whole script stays under 8 minutes):
#   1. quick   (<=  90 s): per-step times of eager / fast / fast-bf16 / 10 seeds / 10 seeds bf16,
#              extrapolated to the 14200-step run (marked "extrapolated" in the JSON);
#   2. full    (<= 190 s): real 100-epoch runs of fast, 10 seeds together and eager on CUDA, each
#              followed by the GZSL protocol (sampling + fast classifier; 3 of the 10 seeds):
#              wall times and U/S/H; the target is 10 seeds within 2x the time of ONE fast run;
#   3. compile (<=  90 s): per-step times and compile time of fast and 10 seeds under torch.compile
#              (the all-terms-on regime only, one graph per path);
#   4. growth  (<=  60 s): step time and torch.cuda.max_memory_allocated for M = 2,3,4,8, 1x/4x/16x.
# A step cut by its limit loses only its own JSON (the full step saves after every path), and the
# summary says which steps are missing.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT="${OUT:-runs/gpu}"
mkdir -p "$OUT"
# mmalign from this checkout; its built-in plugins and registry under their installed names
SHIM=$(mktemp -d)
ln -s "$PWD/plugins" "$SHIM/mmalign_plugins"
ln -s "$PWD/registry" "$SHIM/mmalign_registry"
export PYTHONPATH="$PWD:$SHIM${PYTHONPATH:+:$PYTHONPATH}"
# Overrides for a dry run elsewhere (e.g. DEVICE=cpu EPOCHS=1 SEEDS=2 STEPS=3): not for the real check.
PYTHON="${PYTHON:-python}"
DEVICE="${DEVICE:-cuda}"; EPOCHS="${EPOCHS:-100}"; SEEDS="${SEEDS:-10}"; STEPS="${STEPS:-50}"
started=$(date +%s)

nvidia-smi -L 2>&1 | tee "$OUT/nvidia_smi.txt"
DEVICE=$DEVICE "$PYTHON" - <<'EOF' 2>&1 | tee "$OUT/env.txt"
import importlib, os, sys, torch
print("torch", torch.__version__, "cuda", torch.version.cuda, "available", torch.cuda.is_available())
missing = [m for m in ("pluggy", "pydantic", "safetensors", "numpy", "scipy", "tqdm") if importlib.util.find_spec(m) is None]
if missing or (os.environ["DEVICE"] == "cuda" and not torch.cuda.is_available()):
    print("cannot run: missing", missing, "or no CUDA device")
    sys.exit(3)
import mmalign, mmalign.fast  # noqa: F401
from mmalign.plugins import get_registry
print("mmalign", mmalign.__version__, "from", mmalign.__file__, "modalities", sorted(get_registry().entries))
EOF
[ "${PIPESTATUS[0]}" -eq 0 ] || { echo "environment check failed; see $OUT/env.txt"; exit 3; }

step() {  # name, limit (s), args...
  local name=$1 limit=$2; shift 2
  echo "== $name (limit ${limit}s)"
  timeout --signal=INT --kill-after=10 "$limit" "$PYTHON" benchmarks/bench_speed.py --device "$DEVICE" "$@" \
    --json "$OUT/$name.json" 2>&1 | tee "$OUT/$name.log"
  echo "== $name exit ${PIPESTATUS[0]} after $(( $(date +%s) - started )) s in total"
}

step quick 90 --quick --paths eager,fast,fast-bf16,seeds,seeds-bf16 --seeds "$SEEDS" --rounds 2 \
  --quick-steps "$STEPS" --no-protocol --epochs "$EPOCHS"
step full 190 --paths fast,seeds,eager --seeds "$SEEDS" --epochs "$EPOCHS" --ref-clf-epochs 0 --protocol-runs 3
step compile 90 --quick --paths fast,fast-compile,seeds-compile --seeds "$SEEDS" --rounds 1 --regimes on \
  --quick-steps "$STEPS" --no-protocol --epochs "$EPOCHS"
step growth 60 --growth --quick-steps "$STEPS"

"$PYTHON" - "$OUT" <<'EOF'
import json, pathlib, sys
out = pathlib.Path(sys.argv[1])
summary = {}
for name in ("quick", "full", "compile", "growth"):
    f = out / f"{name}.json"
    summary[name] = json.loads(f.read_text()) if f.exists() else {"missing": "timed out or failed, see the log"}
full = summary["full"].get("vae", {}).get("paths", {})
if "fast" in full and "seeds" in full:
    ratio = full["seeds"]["vae_seconds"] / full["fast"]["vae_seconds"]
    summary["target_seeds_within_2x_of_one"] = {"runs": full["seeds"].get("runs"), "ratio": ratio, "met": ratio <= 2.0}
    print(f"{full['seeds'].get('runs')} seeds together / one fast run: {ratio:.2f}x (target <= 2x)")
for name in ("quick", "full"):
    for path, e in summary[name].get("vae", {}).get("paths", {}).items():
        secs = e.get("vae_seconds", e.get("vae_seconds_extrapolated"))
        print(f"{name:6s} {path:12s} VAE {secs:8.1f} s" + (" (extrapolated)" if "vae_seconds_extrapolated" in e else ""))
(out / "gpu_check.json").write_text(json.dumps(summary, indent=2, default=float))
print("wrote", out / "gpu_check.json")
EOF
echo "total $(( $(date +%s) - started )) s"
