#!/usr/bin/env bash
# One short GPU check of the speed paths (under 8 minutes in total on one H100).
#
#   bash benchmarks/gpu_check.sh            # from the repository root; results in $OUT (or ./runs/gpu)
#
# Installs nothing. Needs torch with CUDA, and mmalign's pure-Python dependencies (pluggy, pydantic,
# safetensors, numpy, scipy, tqdm) importable; mmalign itself is taken from this checkout.
# Steps (each under its own time limit, so the whole script stays under 8 minutes):
#   1. quick   (<= 150 s): per-step times of eager / fast / fast-bf16 / fast-compile / 10 seeds,
#              extrapolated to the 14200-step run (marked "extrapolated" in the JSON);
#   2. full    (<= 270 s): real 100-epoch runs of fast, 10 seeds together and eager on CUDA, each
#              followed by the GZSL protocol (sampling + fast classifier): wall times and U/S/H;
#   3. growth  (<=  60 s): step time and torch.cuda.max_memory_allocated for M = 2,3,4,8 and 1x/4x/16x.
# The target: the 10-seed run within 2x the wall time of one fast run.
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
DEVICE="${DEVICE:-cuda}"; EPOCHS="${EPOCHS:-100}"; SEEDS="${SEEDS:-10}"; STEPS="${STEPS:-50}"
started=$(date +%s)

nvidia-smi -L 2>&1 | tee "$OUT/nvidia_smi.txt"
DEVICE=$DEVICE python - <<'EOF' 2>&1 | tee "$OUT/env.txt"
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
  timeout --signal=INT --kill-after=10 "$limit" python benchmarks/bench_speed.py --device "$DEVICE" "$@" \
    --json "$OUT/$name.json" 2>&1 | tee "$OUT/$name.log"
  echo "== $name exit ${PIPESTATUS[0]} after $(( $(date +%s) - started )) s in total"
}

step quick 150 --quick --seeds "$SEEDS" --compile --rounds 3 --quick-steps "$STEPS" --no-protocol --epochs "$EPOCHS"
step full 270 --paths fast,seeds,eager --seeds "$SEEDS" --epochs "$EPOCHS" --ref-clf-epochs 0
step growth 60 --growth --quick-steps "$STEPS"

python - "$OUT" <<'EOF'
import json, pathlib, sys
out = pathlib.Path(sys.argv[1])
summary = {}
for name in ("quick", "full", "growth"):
    f = out / f"{name}.json"
    summary[name] = json.loads(f.read_text()) if f.exists() else {"missing": "timed out or failed, see the log"}
full = summary["full"].get("vae", {}).get("paths", {})
if "fast" in full and "seeds" in full:
    ratio = full["seeds"]["vae_seconds"] / full["fast"]["vae_seconds"]
    summary["target_10_seeds_within_2x_of_one"] = {"ratio": ratio, "met": ratio <= 2.0}
    print(f"10 seeds together / one fast run: {ratio:.2f}x (target <= 2x)")
(out / "gpu_check.json").write_text(json.dumps(summary, indent=2, default=float))
print("wrote", out / "gpu_check.json")
EOF
echo "total $(( $(date +%s) - started )) s"
