"""Whole commands side by side: the authors' CADA-VAE code against ``mmalign benchmark cub``.

    python benchmarks/vs_authors.py PATH/TO/CADA-VAE-PyTorch [--epochs 100] [--rounds 1]
        [--paths authors default bf16 seeds1 seeds3] [--threads N] [--out runs/vs_authors]

The authors' repository (edgarschnfld/CADA-VAE-PyTorch, MIT) is copied to a temporary folder and
patched there for the CPU only: ``'device': 'cuda'`` becomes ``'cpu'``, ``torch.cuda.FloatTensor`` /
``LongTensor`` become their CPU types, ``.cuda()`` calls go, the epoch count is set, and the old
``size_average=False`` (removed from recent torch) becomes ``reduction='sum'``, which is the same
loss, and their data loader gets a ``__len__`` (recent torch asks for it when their unused
``DataLoader`` is built). Nothing else of their training is touched. Both programs read the same data: the CUB-shaped
synthetic set that ``mmalign benchmark cub --synthetic`` generates (``synthetic_like("CUB", seed=0)``,
7057 training images), written once in the xlsa17 layout into the copy's ``data/CUB/``.

Whole runs (default): each round runs every path once, in turn, as a fresh process (interpreter
start, data loading, VAE training, latent sampling, final classifier), so the drift of a shared
machine falls on all of them alike; ``--parallel`` starts a round's paths together instead (the
same load on all; compare CPU seconds). Prints and appends to ``OUT/times.tsv`` one line per run
(per seed for ``seeds3``): wall, user and system seconds and peak RSS (GNU ``time``), the 1-minute
load average at start and end, and U/S/H (the authors' code: its last classifier line).

``--steps N``: instead of whole runs, N training steps of each program at an epoch with the
cross-reconstruction term off (10) and one with it on (40): the authors' own ``trainstep`` on their
own batches (their ``single_experiment.py`` cut before training) and mmalign's default and bf16
step (``benchmarks/profile_step.py``), in turn, ``--rounds`` times; wall and CPU ms per step to
``OUT/steps.tsv``. CPU time per step is the measure that a loaded machine disturbs least.

Both programs run under the same threading: the OpenMP wait policy mmalign gives itself
(``mmalign.threads``) and ``--threads N`` (``OMP_NUM_THREADS=N`` for the authors' code; default:
torch's default; ``--steps`` defaults to 1). The repository is only read, at the given path.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

#: (file, old, new, how many times at least): the CPU patch of the authors' code
PATCHES = [
    ("single_experiment.py", "'device': 'cuda'", "'device': 'cpu'", 1),
    ("vaemodel.py", "torch.cuda.FloatTensor", "torch.FloatTensor", 1),
    ("vaemodel.py", "torch.cuda.LongTensor", "torch.LongTensor", 1),
    ("vaemodel.py", ".cuda()", "", 1),
    ("vaemodel.py", "size_average=False", "reduction='sum'", 1),
    ("data_loader.py", "device='cuda'", "device='cpu'", 1),
    # recent torch asks a DataLoader's dataset for its length when the (unused) loader is built
    ("data_loader.py", "    def next_batch(self, batch_size):",
     "    def __len__(self):\n        return self.ntrain\n\n    def next_batch(self, batch_size):", 1),
]

PATHS = {
    "default": [],
    "bf16": ["--precision", "bf16"],
    "reference": ["--engine", "reference"],
    "seeds1": [],
    "seeds3": ["--seeds", "3", "--stack-seeds"],
}


def patch_copy(source: Path, dest: Path, epochs: int) -> Path:
    """Copy the authors' repository to ``dest`` and patch it for the CPU; returns its ``model/``."""
    if not (source / "model" / "single_experiment.py").is_file():
        sys.exit(f"vs_authors: {source}: expected the CADA-VAE-PyTorch repository (model/single_experiment.py)")
    shutil.copytree(source, dest, ignore=shutil.ignore_patterns(".git", "data"))
    model = dest / "model"
    for name, old, new, least in PATCHES + [("single_experiment.py", "'epochs': 100", f"'epochs': {epochs}", 1)]:
        path = model / name
        text = path.read_text()
        if text.count(old) < least:
            sys.exit(f"vs_authors: {path}: expected {old!r} to patch; is this the authors' repository?")
        path.write_text(text.replace(old, new))
    return model


def write_data(root: Path) -> None:
    """The data ``mmalign benchmark cub --synthetic`` trains on, as xlsa17 files in ``root/CUB``."""
    from mmalign.datasets import synthetic_like, write_xlsa17_layout

    write_xlsa17_layout(synthetic_like("CUB", seed=0), root, "CUB")


def load_average() -> float:
    return os.getloadavg()[0]


def start(cmd: list[str], cwd: Path, log: Path, env: dict[str, str]) -> subprocess.Popen:
    """Start ``cmd`` under GNU time (its numbers go to ``log`` with suffix ``.time``)."""
    out = open(log, "w")
    return subprocess.Popen(["/usr/bin/time", "-f", "%e %U %S %M", "-o", str(log.with_suffix(".time")), *cmd],
                            cwd=cwd, stdout=out, stderr=subprocess.STDOUT, env=env)


def finish(proc: subprocess.Popen, log: Path) -> tuple[float, float, float, int]:
    """Wait for ``proc``; wall, user, sys seconds and peak RSS (MiB) by GNU time."""
    rc = proc.wait()
    if rc != 0:
        sys.exit(f"vs_authors: {' '.join(map(str, proc.args))} failed (exit {rc}); see {log}")
    wall, user, sys_s, rss = log.with_suffix(".time").read_text().split()[-4:]
    return float(wall), float(user), float(sys_s), int(rss) // 1024


def authors_ush(log: Path) -> tuple[float, float, float]:
    """U, S, H (percent) of the authors' last classifier epoch line ``novel=.., seen=.., h=..``."""
    hits = re.findall(r"novel=([\d.]+), seen=([\d.]+), h=([\d.]+)", log.read_text())
    if not hits:
        sys.exit(f"vs_authors: {log}: no 'novel=, seen=, h=' line")
    u, s, h = (100 * float(v) for v in hits[-1])
    return u, s, h


def mmalign_ush(results: Path) -> list[tuple[float, float, float]]:
    raw = json.loads(results.read_text())
    records = raw["records"] if isinstance(raw, dict) else raw
    out = []
    for r in records:
        m = r.get("metrics", r)
        out.append((m["U"], m["S"], m["H"]))
    return out


#: appended to the authors' single_experiment.py (cut before training) by ``--steps``: their own
#: ``trainstep`` on their own batches at an epoch with the cross term off (10) and on (40)
STEP_TIMER = """
import time
model.train()
model.reparameterize_with_noise = True
for epoch in (10, 40):
    model.current_epoch = epoch
    for phase, count in (("warm", WARM), ("timed", STEPS)):
        wall, cpu = time.perf_counter(), time.process_time()
        for _ in range(count):
            label, x = model.dataset.next_batch(model.batch_size)
            model.trainstep(x[0], x[1])
    print("STEP", epoch, 1e3 * (time.perf_counter() - wall) / STEPS, 1e3 * (time.process_time() - cpu) / STEPS)
"""


def step_timer(model_dir: Path, steps: int, warm: int) -> Path:
    """The authors' experiment script, stopped before training, timing ``steps`` of their step."""
    text = (model_dir / "single_experiment.py").read_text()
    cut = text.index("losses = model.train_vae()")
    path = model_dir / "step_timer.py"
    path.write_text(text[:cut] + STEP_TIMER.replace("WARM", str(warm)).replace("STEPS", str(steps)))
    return path


def per_step(args, model_dir: Path) -> None:
    """Per-step wall and CPU ms of the authors' step and of mmalign's (default, bf16), interleaved."""
    timer = step_timer(model_dir, args.steps, 10)
    threads = args.threads or 1
    out = args.out / "steps.tsv"
    if not out.exists():
        out.write_text("round\tpath\tthreads\tregime\twall_ms\tcpu_ms\tload1\n")
    here = Path(__file__).resolve().parent
    for rnd in range(1, args.rounds + 1):
        for path in ("authors", "default", "bf16"):
            env = {**os.environ, **same_policy(threads)}
            load = load_average()
            if path == "authors":
                cmd = [sys.executable, timer.name, "--dataset", "CUB", "--num_shots", "0", "--generalized", "True"]
                text = subprocess.run(cmd, cwd=model_dir, env=env, capture_output=True, text=True, check=True).stdout
                rows = [line.split()[1:] for line in text.splitlines() if line.startswith("STEP")]
                rows = [(f"cross {'off' if int(e) < 21 else 'on'} (epoch {e})", float(w), float(c)) for e, w, c in rows]
            else:
                cmd = [sys.executable, str(here / "profile_step.py"), "--threads", str(threads), "--steps",
                       str(args.steps), "--warm", "10", "--json", str(args.out / "profile.jsonl")]
                subprocess.run(cmd + (["--bf16"] if path == "bf16" else []), env=env, check=True,
                               capture_output=True, text=True)
                record = [json.loads(line) for line in (args.out / "profile.jsonl").read_text().splitlines()][-1]
                rows = [(regime, ms["total"][0], ms["total"][1]) for regime, ms in record["ms"].items()]
            for regime, wall, cpu in rows:
                line = f"{rnd}\t{path}\t{threads}\t{regime}\t{wall:.1f}\t{cpu:.1f}\t{load:.2f}"
                print(line, flush=True)
                with open(out, "a") as f:
                    f.write(line + "\n")


def same_policy(threads: int | None) -> dict[str, str]:
    """The OpenMP environment ``mmalign`` gives itself (its wait policy, ``--threads``), for the
    authors' process: both programs run under the same threading."""
    from mmalign.threads import SHORT_SPIN, SPIN_COUNT, WAIT_POLICY

    env = {} if WAIT_POLICY in os.environ or SPIN_COUNT in os.environ else {SPIN_COUNT: SHORT_SPIN}
    if threads:
        env["OMP_NUM_THREADS"] = str(threads)
    return env


def report(table: Path, rnd: int, epochs: int, path: str, proc: subprocess.Popen, log: Path, load: float,
           run_dir: Path | None) -> None:
    wall, user, sys_s, rss = finish(proc, log)
    rows = [authors_ush(log)] if run_dir is None else mmalign_ush(run_dir / "results.json")
    for u, s, h in rows:
        line = (f"{path}\t{rnd}\t{epochs}\t{wall:.1f}\t{user:.1f}\t{sys_s:.1f}\t{rss}\t{load:.2f}\t"
                f"{os.getloadavg()[0]:.2f}\t{u:.1f}\t{s:.1f}\t{h:.1f}")
        print(line, flush=True)
        with open(table, "a") as f:
            f.write(line + "\n")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0], allow_abbrev=False)
    p.add_argument("authors", type=Path, help="the CADA-VAE-PyTorch repository (read only; copied)")
    p.add_argument("--epochs", type=int, default=100)
    p.add_argument("--rounds", type=int, default=1)
    p.add_argument("--paths", nargs="+", default=["authors", "default", "bf16"], choices=["authors", *PATHS])
    p.add_argument("--threads", type=int, help="threads of both programs (default: torch's default)")
    p.add_argument("--out", type=Path, default=Path("runs/vs_authors"))
    p.add_argument("--steps", type=int,
                   help="instead of whole runs: time this many training steps of each program at an epoch with the "
                        "cross term off and one with it on (wall and CPU ms per step; --threads, default 1)")
    p.add_argument("--parallel", action="store_true",
                   help="start a round's paths together (same load on all; compare CPU seconds) instead of in turn")
    args = p.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="vs_authors_"))
    try:
        model_dir = patch_copy(args.authors.resolve(), work / "CADA-VAE-PyTorch", args.epochs)
        write_data(work / "CADA-VAE-PyTorch" / "data")
        if args.steps:
            return per_step(args, model_dir)
        table = args.out / "times.tsv"
        if not table.exists():
            table.write_text("path\tround\tepochs\twall_s\tuser_s\tsys_s\tpeak_rss_mb\tload1_start\tload1_end\tU\tS\tH\n")
        print(open("/proc/cpuinfo").read().split("model name")[1].split("\n")[0].strip(" \t:"), flush=True)
        for rnd in range(1, args.rounds + 1):
            running = []  # (path, process, log, load before, run folder)
            for path in args.paths:
                env = dict(os.environ)
                load = load_average()
                log = (args.out / f"{path}-{rnd}.log").resolve()
                if path == "authors":
                    env.update(same_policy(args.threads), PYTHONUNBUFFERED="1")
                    cmd = [sys.executable, "single_experiment.py", "--dataset", "CUB", "--num_shots", "0",
                           "--generalized", "True"]
                    proc, run_dir = start(cmd, model_dir, log, env), None
                else:
                    run_dir = (args.out / f"{path}-{rnd}").resolve()
                    shutil.rmtree(run_dir, ignore_errors=True)
                    cmd = [sys.executable, "-m", "mmalign", "benchmark", "cub", "--synthetic", "--epochs",
                           str(args.epochs), "--out", str(run_dir), "--no-progress", *PATHS[path]]
                    if args.threads:
                        cmd += ["--threads", str(args.threads)]
                    proc = start(cmd, Path.cwd(), log, env)
                running.append((path, proc, log, load, run_dir))
                if not args.parallel:
                    report(table, rnd, args.epochs, *running.pop())
            for item in running:
                report(table, rnd, args.epochs, *item)
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
