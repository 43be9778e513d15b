"""What a finished sweep prints: its workers' warnings as ``mmalign: warning:`` lines (once each,
never Python's raw format), and the results table of its records."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import malformed

ROOT = Path(__file__).resolve().parents[1]


def test_sweep_output_workers_warn_in_one_line_and_the_table_is_printed(tmp_path):
    folder = malformed.write_dataset(tmp_path / "data", "toyW", malformed.small_data(per_class=20))
    toml = tmp_path / "sweep.toml"
    toml.write_text(f'''[fixed]
dataset = "{folder}"
epochs = 2
classifier_epochs = 2
"aligner.latent_size" = 4
"aligner.training.batch_size" = 16

[grid]
seed = [0, 1]
''')  # 2 epochs end before the recipe's alignment ramp starts: every run warns
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    env.pop("MMALIGN_DEBUG", None)
    out = subprocess.run([sys.executable, "-m", "mmalign", "sweep", str(toml), "--out", str(tmp_path / "out"),
                          "--workers", "2", "--threads", "1", "--no-progress"], env=env, capture_output=True,
                         text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    assert out.stderr.count("mmalign: warning: training for 2 epoch(s) ends before") == 1, out.stderr
    assert "UserWarning" not in out.stderr and "warnings.warn(" not in out.stderr, out.stderr
    table = out.stdout[out.stdout.index("mean ± std"):]
    rows = [line for line in table.splitlines() if line.startswith("TOYW")]
    assert len(rows) == 3 and all(" 2 " in row for row in rows), out.stdout  # U, S, H over the 2 seeds
