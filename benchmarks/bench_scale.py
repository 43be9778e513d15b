"""Scale-out measurements for benchmarks/SCALE.md: DDP step time (1 vs N processes), and sweep
throughput (runs per minute with 1 and 2 local workers).

DDP: CUB-shaped synthetic data (2048-d features, 312-d attributes, CADA's network sizes) cut to
``--samples`` training rows, engine ``auto``, one thread per process; each configuration trains
``--epochs`` epochs and the step time is the median epoch time / steps per epoch (epoch 0 excluded
when there are several). ``--batch`` sets the global batch (CADA: 50).

    python benchmarks/bench_scale.py ddp --procs 1 2 --batch 50 512 --json runs/scale_ddp.json
    python benchmarks/bench_scale.py sweep --workers 1 2 --json runs/scale_sweep.json

Run on a quiet machine; on a shared one the numbers say what the machine had left.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _data(samples: int):
    import numpy as np

    from mmalign.datasets import synthetic_like

    data = synthetic_like("CUB", seed=0)
    keep = np.asarray(data.splits["trainval"])[:samples]
    data.splits["trainval"] = keep
    return data


def ddp_worker(samples: int, batch: int, epochs: int) -> None:
    """One process (or one torchrun rank): train and print the epoch times (rank 0)."""
    import torch

    import mmalign
    from mmalign.training.distributed import init_from_env, shutdown

    torch.set_num_threads(1)
    group = init_from_env("cpu")
    aligner = mmalign.Aligner(["image_features", "attributes"],
                              {"device": "cpu", "training": {"epochs": epochs, "batch_size": batch}})
    history = aligner.fit(_data(samples), progress=False)
    if group is None or group.primary:
        print(json.dumps({"epoch_seconds": [h.seconds for h in history], "loss": history[-1].terms["loss"]}))
    shutdown()


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def ddp(procs: list[int], batches: list[int], samples: int, epochs: int) -> list[dict]:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    rows = []
    for batch in batches:
        base = None
        for n in procs:
            args = [__file__, "ddp-worker", "--samples", str(samples), "--batch", str(batch), "--epochs", str(epochs)]
            cmd = [sys.executable, *args] if n == 1 else [
                sys.executable, "-m", "torch.distributed.run", "--nnodes", "1", "--nproc-per-node", str(n),
                "--master-addr", "127.0.0.1", "--master-port", str(_port()), *args]
            out = subprocess.run(cmd, env=env, capture_output=True, text=True, check=True).stdout
            result = json.loads(out.strip().splitlines()[-1])
            times = result["epoch_seconds"][1:] or result["epoch_seconds"]
            steps = -(-samples // batch)
            step_ms = statistics.median(times) / steps * 1000
            base = base or step_ms
            row = {"procs": n, "batch": batch, "step_ms": round(step_ms, 2), "speedup": round(base / step_ms, 2),
                   "efficiency": round(base / step_ms / n, 2), "loss": result["loss"]}
            print(json.dumps(row), flush=True)
            rows.append(row)
    return rows


def sweep(workers: list[int], runs_seed: int) -> list[dict]:
    sys.path.insert(0, str(ROOT / "tests"))
    import malformed

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        folder = malformed.write_dataset(Path(tmp) / "data", "toyS", malformed.small_data(per_class=20))
        toml = Path(tmp) / "sweep.toml"
        toml.write_text(f'''[fixed]
dataset = "{folder}"
epochs = 60
classifier_epochs = 5
"aligner.latent_size" = 8
"aligner.training.batch_size" = 16
[grid]
seed = {list(range(runs_seed, runs_seed + 4))}
shots = [0, 1]
''')
        env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
        for n in workers:
            out = Path(tmp) / f"out{n}"
            started = time.perf_counter()
            subprocess.run([sys.executable, "-m", "mmalign", "sweep", str(toml), "--out", str(out), "--workers", str(n),
                            "--threads", "1", "--no-progress"], env=env, check=True, capture_output=True)
            seconds = time.perf_counter() - started
            count = len(json.loads((out / "results.json").read_text()))
            row = {"workers": n, "runs": count, "seconds": round(seconds, 1), "runs_per_min": round(count / seconds * 60, 1)}
            print(json.dumps(row), flush=True)
            rows.append(row)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="what", required=True)
    for name in ("ddp", "ddp-worker"):
        p = sub.add_parser(name)
        p.add_argument("--samples", type=int, default=2000)
        p.add_argument("--epochs", type=int, default=3)
        if name == "ddp":
            p.add_argument("--procs", type=int, nargs="+", default=[1, 2])
            p.add_argument("--batch", type=int, nargs="+", default=[50])
        else:
            p.add_argument("--batch", type=int, default=50)
        p.add_argument("--json")
    p = sub.add_parser("sweep")
    p.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    p.add_argument("--json")
    args = parser.parse_args()
    if args.what == "ddp-worker":
        ddp_worker(args.samples, args.batch, args.epochs)
        return
    rows = ddp(args.procs, args.batch, args.samples, args.epochs) if args.what == "ddp" else sweep(args.workers, 0)
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
