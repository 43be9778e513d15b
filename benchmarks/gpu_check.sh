#!/usr/bin/env bash
# One short GPU check of the speed paths (about 7 minutes at most on one H100).
#
#   bash benchmarks/gpu_check.sh            # from the repository root; results in $OUT (or ./runs/gpu)
#
# Installs nothing. Needs torch with CUDA, and mmalign's pure-Python dependencies (pluggy, pydantic,
# safetensors, numpy, scipy, tqdm) importable; mmalign itself is taken from this checkout.
# Steps (each under its own time limit):
#   1. equivalence (<=  60 s): reference vs auto (graphs on/off) vs 2 seeds batched, and the classifier's
#              fast path vs the DataLoader reference, on the GPU (benchmarks/gpu_equivalence.py);
#   2. quick   (<=  75 s): per-step times of every path, with and without CUDA graphs, extrapolated
#              to the 14200-step run (marked "extrapolated" in the JSON);
#   3. full    (<= 220 s): real 100-epoch runs of fast, 10 seeds together, fast-bf16 and eager on
#              CUDA, each followed by the GZSL protocol (sampling + fast classifier; 3 of the 10
#              seeds): wall times and U/S/H; the targets are one run (VAE + sampling + classifier)
#              in <= 10 s and 10 seeds within 2x the time of ONE fast run;
#   4. cli     (<= 120 s): `python -m mmalign benchmark cub --synthetic --seeds 3` on the
#              GPU, end to end (its results.json comes back as cli_results.json);
#   5. growth  (<=  60 s): step time and torch.cuda.max_memory_allocated for M = 2,3,4,8, 1x/4x/16x.
# A step cut by its limit loses only its own JSON (the full step saves after every path), and the
# summary says which steps are missing. Seven files in $OUT: one JSON per step, gpu_check.json (all
# of them and the targets) and gpu_check.log (everything printed).
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

LOG="$OUT/gpu_check.log"
: > "$LOG"
nvidia-smi -L 2>&1 | tee -a "$LOG"
DEVICE=$DEVICE "$PYTHON" - <<'EOF' 2>&1 | tee -a "$LOG"
import importlib, os, sys, torch
print("torch", torch.__version__, "cuda", torch.version.cuda, "available", torch.cuda.is_available())
missing = [m for m in ("pluggy", "pydantic", "safetensors", "numpy", "scipy", "tqdm") if importlib.util.find_spec(m) is None]
if missing or (os.environ["DEVICE"] == "cuda" and not torch.cuda.is_available()):
    print("cannot run: missing", missing, "or no CUDA device")
    sys.exit(3)
import mmalign, mmalign.training  # noqa: F401
from mmalign.plugins import get_registry
print("mmalign", mmalign.__version__, "from", mmalign.__file__, "modalities", sorted(get_registry().entries))
EOF
[ "${PIPESTATUS[0]}" -eq 0 ] || { echo "environment check failed; see $LOG"; exit 3; }

step() {  # name, limit (s), script, args...
  local name=$1 limit=$2 script=$3; shift 3
  echo "== $name (limit ${limit}s)" | tee -a "$LOG"
  PYTHONUNBUFFERED=1 timeout --signal=INT --kill-after=10 "$limit" "$PYTHON" "$script" --device "$DEVICE" "$@" \
    --json "$OUT/$name.json" 2>&1 | tee -a "$LOG"
  echo "== $name exit ${PIPESTATUS[0]} after $(( $(date +%s) - started )) s in total" | tee -a "$LOG"
}

step equivalence 60 benchmarks/gpu_equivalence.py --epochs "${EQ_EPOCHS:-3}" --classifier-epochs "${CLF_EPOCHS:-3}"
step quick 75 benchmarks/bench_speed.py --quick --paths reference,auto,auto-nograph,auto-bf16,seeds,seeds-nograph,seeds-bf16 \
  --seeds "$SEEDS" --rounds 2 --quick-steps "$STEPS" --no-protocol --epochs "$EPOCHS"
step full 220 benchmarks/bench_speed.py --paths auto,seeds,auto-bf16,reference --seeds "$SEEDS" --epochs "$EPOCHS" \
  --ref-clf-epochs "${REF_CLF_EPOCHS:-2}" --protocol-runs 3
# the CLI end to end on the GPU: 3 seeds of the default GZSL run (engine auto, seeds stacked on the GPU)
echo "== cli (limit 120s)" | tee -a "$LOG"
RUNS=$(mktemp -d)
PYTHONUNBUFFERED=1 timeout --signal=INT --kill-after=10 120 "$PYTHON" -m mmalign benchmark cub --synthetic --seeds 3 \
  --device "$DEVICE" --epochs "$EPOCHS" --out "$RUNS" --no-progress 2>&1 | tee -a "$LOG"
echo "== cli exit ${PIPESTATUS[0]} after $(( $(date +%s) - started )) s in total" | tee -a "$LOG"
cp "$RUNS/results.json" "$OUT/cli_results.json" 2>/dev/null
step growth 60 benchmarks/bench_speed.py --growth --quick-steps "$STEPS"

"$PYTHON" - "$OUT" <<'EOF'
import json, pathlib, sys
out = pathlib.Path(sys.argv[1])
summary = {}
for name in ("equivalence", "quick", "full", "growth", "cli_results"):
    f = out / f"{name}.json"
    summary[name] = json.loads(f.read_text()) if f.exists() else {"missing": "timed out or failed, see the log"}
full = summary["full"].get("vae", {}).get("paths", {})
if "auto" in full and "seeds" in full:
    ratio = full["seeds"]["vae_seconds"] / full["auto"]["vae_seconds"]
    summary["target_seeds_within_2x_of_one"] = {"runs": full["seeds"].get("runs"), "ratio": ratio, "met": ratio <= 2.0}
    print(f"{full['seeds'].get('runs')} seeds together / one fast run: {ratio:.2f}x (target <= 2x)")
for name in ("quick", "full"):
    for path, e in summary[name].get("vae", {}).get("paths", {}).items():
        secs = e.get("vae_seconds", e.get("vae_seconds_extrapolated"))
        print(f"{name:6s} {path:12s} VAE {secs:8.1f} s" + (" (extrapolated)" if "vae_seconds_extrapolated" in e else ""))
proto = summary["full"].get("protocol", {}).get("paths", {}) if isinstance(summary["full"].get("protocol"), dict) else {}
for path, e in full.items():
    p = proto.get(path, {})
    if "vae_seconds" in e and "classifier_seconds" in p:
        total = e["vae_seconds"] + p.get("sampling_seconds", 0.0) + p["classifier_seconds"]
        summary.setdefault("one_run_seconds", {})[path] = total
        print(f"full   {path:12s} VAE + sampling + classifier {total:8.1f} s (target <= 10 s for one run)")
(out / "gpu_check.json").write_text(json.dumps(summary, indent=2, default=float))
print("wrote", out / "gpu_check.json")
EOF
echo "total $(( $(date +%s) - started )) s" | tee -a "$LOG"
