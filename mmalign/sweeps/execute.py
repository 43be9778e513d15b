"""Running a sweep: the runs go to workers (in this process, a local process pool, or Ray tasks);
this process, the driver, is the one writer of ``OUT/results.json``.

Every finished run's record is appended at once (atomically, under the results lock: `mmalign.records.files.write_record`)
with ``sweep = {"run": id, "params": ..., "attempts": n}``; ``resume`` skips the runs whose id is
already there, so a killed driver loses no finished record and runs none twice. A failing run is
retried ``retries`` times, then written to ``OUT/failures.json`` with its error while the others go
on (a later ``resume`` tries it again). A progress bar counts runs done, failed and left, with
tqdm's estimate of the time left.
"""

from __future__ import annotations

import concurrent.futures as cf
import json
import math
import multiprocessing
import os
import re
import shutil
import socket
import sys
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from ..atomic import write_json_atomic
from ..errors import ConfigError, OutputError
from ..outputs import check_output_dir
from ..records.files import load_records, write_record
from ..records.schema import ResultRecord, dump_record
from ..records.tables import results_table
from .spec import Sweep, SweepRun, build_request

SCRATCH = ".sweep-scratch"
FAILURES = "failures.json"
#: A scratch folder of one attempt: ``<run id>-<attempt>``.
_SCRATCH_ENTRY = re.compile(r"[0-9a-f]{16}-[0-9]+")
#: Seconds to wait for a Ray cluster at ``--ray ADDRESS`` to answer (default 10).
RAY_CONNECT_TIMEOUT = 10.0


def check_sweep_output(out: str | Path) -> Path:
    """Refuse, before anything runs, an ``out`` that cannot take the sweep or holds files mmalign did
    not write where the sweep writes or removes: a ``failures.json`` that is not a sweep's list of
    failures, a ``.sweep-scratch`` that holds anything but run folders (both would be replaced or
    deleted). ``results.json`` is checked by `mmalign.records.load_records`."""
    out = check_output_dir(out, "--out", writes=("results.json", FAILURES))
    failures = out / FAILURES
    if failures.exists() or failures.is_symlink():
        try:
            rows = json.loads(failures.read_text())
        except (OSError, ValueError):
            rows = None
        ours = isinstance(rows, list) and all(isinstance(r, dict) and {"run", "params", "error"} <= set(r) for r in rows)
        if not ours or failures.is_symlink():
            raise OutputError(f"--out {out}: {FAILURES} there was not written by a sweep (a sweep replaces and removes "
                              "it); move it away or choose another --out")
    scratch = out / SCRATCH
    if scratch.is_symlink() or (scratch.exists() and not scratch.is_dir()):
        raise OutputError(f"--out {out}: {SCRATCH} there is not a folder a sweep made (a sweep deletes it); move it "
                          "away or choose another --out")
    if scratch.is_dir():
        foreign = [p.name for p in scratch.iterdir()
                   if not (_SCRATCH_ENTRY.fullmatch(p.name) and p.is_dir() and not p.is_symlink())]
        if foreign:
            raise OutputError(f"--out {out}: {SCRATCH} holds {foreign[0]!r}, which a sweep did not write (it deletes "
                              "that folder); move it away or choose another --out")
    return out


def run_one(params: dict[str, Any], scratch: str, threads: int | None = None) -> dict[str, list]:
    """One run in a worker: train and evaluate (`mmalign benchmark`'s code), its records written to
    `scratch` only.

    Returns:
        `{"records": [...], "warnings": [...]}`: the records (dicts) and the text of every Python
        warning the run raised, for the driver to print as `mmalign: warning:` lines (a spawned
        worker or a Ray task has no terminal of its own).
    """
    from ..benchmarks.classification import run_benchmark
    from ..threads import limit_threads

    limit_threads(threads)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("default")
        records = run_benchmark(build_request(params, Path(scratch)), log=lambda line: None)
    return {"records": [dump_record(r) for r in records], "warnings": [str(w.message) for w in caught]}


def check_threads(threads: int | None) -> int | None:
    """``threads`` per run (``None``: the default), refused below 1 before any run starts."""
    if threads is not None and (isinstance(threads, bool) or not isinstance(threads, int) or threads < 1):
        raise ConfigError(f"--threads must be at least 1, got {threads!r}")
    return threads


def free_workers() -> int:
    """The CPU cores this process may use (the default pool size)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:
        return max(1, os.cpu_count() or 1)


class InProcess:
    """Runs each run in the driver itself, one after the other (when the driver waits for one)."""

    def __init__(self, threads: int | None) -> None:
        self.threads = check_threads(threads)
        self.submitted = 0

    def submit(self, params: dict[str, Any], scratch: str) -> Any:
        future: cf.Future = cf.Future()
        future.order, future.call = self.submitted, (params, scratch)  # type: ignore[attr-defined]
        self.submitted += 1
        return future

    def wait(self, pending: set) -> set:
        future = min(pending, key=lambda f: f.order)
        try:
            future.set_result(run_one(*future.call, self.threads))
        except Exception as exc:  # reported by the driver like a worker's error
            future.set_exception(exc)
        return {future}

    @staticmethod
    def outcome(handle: Any) -> tuple[dict[str, list] | None, BaseException | None]:
        exc = handle.exception()
        return (None, exc) if exc is not None else (handle.result(), None)

    def close(self) -> None:
        pass


class LocalPool(InProcess):
    """A ``concurrent.futures`` process pool of ``workers`` fresh interpreters (spawned)."""

    def __init__(self, workers: int, threads: int | None) -> None:
        super().__init__(threads)
        self.pool = cf.ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"))

    def submit(self, params: dict[str, Any], scratch: str) -> Any:
        return self.pool.submit(run_one, params, scratch, self.threads)

    def wait(self, pending: set) -> set:
        done, _ = cf.wait(pending, return_when=cf.FIRST_COMPLETED)
        return done

    def close(self) -> None:
        self.pool.shutdown(wait=True, cancel_futures=True)


class RayTasks:
    """One Ray task per run (``num_cpus``/``num_gpus`` each) on the cluster at ``address`` (``None``:
    a local Ray started on demand), through Ray's own API (``pip install 'mmalign[ray]'``)."""

    def __init__(self, address: str | None, num_cpus: float, num_gpus: float, threads: int | None,
                 local_cpus: int | None = None) -> None:
        check_threads(threads)
        if not math.isfinite(num_cpus) or num_cpus <= 0:
            raise ConfigError(f"--cpus-per-run must be a finite number greater than 0, got {num_cpus!r}")
        if not math.isfinite(num_gpus) or num_gpus < 0:
            raise ConfigError(f"--gpus-per-run must be a finite number, 0 or more, got {num_gpus!r}")
        try:
            import ray
        except ImportError:
            raise ConfigError("--ray needs Ray: pip install 'mmalign[ray]'") from None
        self.ray = ray
        if not ray.is_initialized():
            if address:
                probe_ray_address(address)
            kwargs: dict[str, Any] = {"address": address} if address else {"num_cpus": local_cpus}
            try:
                ray.init(include_dashboard=False, log_to_driver=False, **kwargs)
            except (ConnectionError, RuntimeError, ValueError, TimeoutError) as exc:
                first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:300]
                raise ConfigError(f"--ray {address or '(local)'}: Ray did not start or connect: {first}") from None
        self.remote = ray.remote(num_cpus=num_cpus, num_gpus=num_gpus, max_retries=0)(run_one)
        self.threads = threads

    def submit(self, params: dict[str, Any], scratch: str) -> Any:
        return self.remote.remote(params, scratch, self.threads)

    def wait(self, pending: set) -> set:
        done, _ = self.ray.wait(list(pending), num_returns=1)
        return set(done)

    def outcome(self, handle: Any) -> tuple[dict[str, list] | None, BaseException | None]:
        try:
            return self.ray.get(handle), None
        except Exception as exc:
            return None, exc

    def close(self) -> None:
        pass


def probe_ray_address(address: str, timeout: float = RAY_CONNECT_TIMEOUT) -> None:
    """Refuse ``--ray ADDRESS`` (``host:port`` or ``ray://host:port``; ``auto`` is left to Ray) when
    nothing accepts a connection there within ``timeout`` seconds: Ray itself retries for ever."""
    if address in ("auto", "local"):
        return
    target = address.split("://", 1)[1] if "://" in address else address
    host, _, port = target.rpartition(":")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ConfigError(f"--ray {address}: expected HOST:PORT or ray://HOST:PORT (e.g. 10.0.0.5:6379), or auto")
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=timeout).close()
    except OSError as exc:
        reason = "no answer" if isinstance(exc, TimeoutError) else (exc.strerror or str(exc))
        raise ConfigError(f"--ray {address}: no Ray cluster answers there ({reason} within {timeout:g} s); start "
                          "one with 'ray start --head' or check the address") from None


@dataclass
class SweepReport:
    """What a sweep did: records appended now, runs skipped as already done, failures."""

    appended: list[dict[str, Any]] = field(default_factory=list)
    skipped: int = 0
    failures: list[dict[str, Any]] = field(default_factory=list)
    seconds: float = 0.0


def _error_text(exc: BaseException) -> str:
    text = f"{type(exc).__name__}: {exc}".strip()
    return text.splitlines()[-1][:500] if "\n" in text else text[:500]


def warning_line(message: str) -> None:
    """Print a worker's warning the way the CLI prints its own: one `mmalign: warning:` line on
    stderr (through tqdm, so that it does not break the progress bar's line)."""
    from tqdm.auto import tqdm

    tqdm.write(f"mmalign: warning: {message}", file=sys.stderr)


def run_sweep(sweep: Sweep, out: str | Path, executor, resume: bool = False, progress: bool = True,
              log: Callable[[str], None] = print, warn: Callable[[str], None] = warning_line) -> SweepReport:
    """Run every run of `sweep` not yet in `OUT/results.json` (see the module docstring).

    Args:
        sweep: the validated sweep.
        out: the output folder.
        executor: `InProcess`, `LocalPool` or `RayTasks`.
        resume: skip the runs already in `OUT/results.json` (default False: refuse them).
        progress: show a progress bar (default True).
        log: where progress lines and, at the end, the results table of the sweep's records go
            (default `print`).
        warn: where the workers' warnings go, each distinct message once (default: a
            `mmalign: warning:` line on stderr).
    """
    out = check_sweep_output(out)
    results = out / "results.json"
    existing = load_records(results)
    done = {r.details["sweep"].get("run") for r in existing if isinstance(r.details.get("sweep"), dict)}
    mine = [run for run in sweep.runs if run.id in done]
    if mine and not resume:
        raise ConfigError(f"{results}: already holds {len(mine)} run(s) of this sweep; pass --resume to run the rest "
                          "(finished runs are skipped), or choose another --out")
    todo = [run for run in sweep.runs if run.id not in done]
    report = SweepReport(skipped=len(sweep.runs) - len(todo))
    if report.skipped:
        log(f"resume: {report.skipped} of {len(sweep.runs)} run(s) already in {results}; skipped")
    out.mkdir(parents=True, exist_ok=True)
    scratch_root = out / SCRATCH
    started = time.perf_counter()
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=len(todo), desc="sweep", unit="run")
    attempts = {run.id: 0 for run in todo}
    pending: dict[Any, SweepRun] = {}
    warned: set[str] = set()

    def submit(run: SweepRun) -> None:
        attempts[run.id] += 1
        scratch = scratch_root / f"{run.id}-{attempts[run.id]}"
        shutil.rmtree(scratch, ignore_errors=True)
        pending[executor.submit(run.params, str(scratch))] = run

    try:
        for run in todo:
            submit(run)
        while pending:
            for handle in executor.wait(set(pending)):
                run = pending.pop(handle)
                returned, exc = executor.outcome(handle)
                shutil.rmtree(scratch_root / f"{run.id}-{attempts[run.id]}", ignore_errors=True)
                if exc is not None:
                    if attempts[run.id] <= sweep.retries:
                        log(f"run {run.id} ({run.describe(sweep.varying)}) failed ({_error_text(exc)}); retrying")
                        submit(run)
                        continue
                    report.failures.append({"run": run.id, "params": run.params, "attempts": attempts[run.id],
                                            "error": _error_text(exc)})
                    write_json_atomic(out / FAILURES, report.failures)
                else:
                    for message in returned["warnings"]:
                        if message not in warned:
                            warned.add(message)
                            warn(message)
                    for raw in returned["records"]:
                        record = ResultRecord.model_validate(raw)
                        record.details["sweep"] = {"run": run.id, "params": run.params, "attempts": attempts[run.id]}
                        write_record(results, record)
                        report.appended.append(dump_record(record))
                if bar is not None:
                    finished = len(todo) - len(pending)
                    bar.set_postfix(done=finished - len(report.failures), failed=len(report.failures),
                                    left=len(pending), refresh=False)
                    bar.update(1)
    finally:
        if bar is not None:
            bar.close()
        executor.close()
        shutil.rmtree(scratch_root, ignore_errors=True)
    if not report.failures:
        (out / FAILURES).unlink(missing_ok=True)  # from an earlier attempt (checked to be a sweep's), now all done
    report.seconds = time.perf_counter() - started
    ids = {run.id for run in sweep.runs}
    mine = [r for r in load_records(results) if isinstance(r.details.get("sweep"), dict)
            and r.details["sweep"].get("run") in ids]
    if mine:
        log("")
        log(results_table(mine))
    return report
