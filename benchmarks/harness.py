"""The parent side of a benchmark run: the rows, one fresh process per training, interleaved.

A row is one implementation (nnscratch's network, PyTorch's, the naive CNN,
the seed's loop, a ``--baseline`` checkout's nnscratch). Each repetition
runs every row once, in order, each in a fresh process, so that every row
sees the same machine load and no row inherits another's warm caches or
memory:

- nnscratch rows: ``python -m benchmarks.worker SPEC`` (``worker.py``), whose
  last output line is ``RESULT_TAG`` and its result as JSON;
- the PyTorch row: ``torch_ref.py MODEL`` under the Python of another
  virtual environment, whose ``sec_per_epoch`` lines are parsed.

The peak resident memory of each process comes from ``os.wait4``.
"""
import gzip
import json
import os
import re
import shutil
import statistics
import struct
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field

import numpy as np

from benchmarks import REPO  # first: it puts src/ on sys.path
from benchmarks.models import N_TRAIN

import nnscratch  # after benchmarks, which chose the src/ it comes from
from nnscratch.data import MNIST_DIR, verify_checksums

TORCH_REF = os.path.join(REPO, "benchmarks", "torch_ref.py")
TORCH_PYTHON_ENV = "NNSCRATCH_TORCH_PYTHON"
DEFAULT_TORCH_PYTHON = os.path.expanduser("~/torchref/bin/python")
RESULT_TAG = "BENCH_WORKER_RESULT "
WARM_UP_IMAGES = 6400


# -- memory of one process -------------------------------------------------------------
def add_torch_arguments(parser):
    """``--no-torch`` and ``--torch-python``, the options every benchmark with a PyTorch side takes."""
    parser.add_argument("--no-torch", action="store_true", help="skip the PyTorch reference")
    parser.add_argument("--torch-python", default=None,
                        help=f"python with torch installed (default ${TORCH_PYTHON_ENV}, else "
                             f"{DEFAULT_TORCH_PYTHON}, if it exists)")


def maxrss_mb(ru_maxrss):
    """``ru_maxrss`` in MB (2**20 bytes): kilobytes on Linux, bytes on macOS."""
    return ru_maxrss / (2 ** 20 if sys.platform == "darwin" else 2 ** 10)


def memory_status(field_name):
    """``VmRSS`` (resident now) or ``VmHWM`` (peak) of this process in MB, from /proc/self/status
    (Linux only; None elsewhere)."""
    try:
        with open("/proc/self/status") as f:
            return int(re.search(field_name + r":\s+(\d+)", f.read()).group(1)) / 2 ** 10
    except (OSError, AttributeError):
        return None


def reset_peak_rss():
    """Reset VmHWM to the current RSS (Linux >= 4.0), so that it then holds what follows's peak."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    except OSError:
        pass


# -- numbers over repetitions ----------------------------------------------------------
def summary(values):
    """``{"median", "min", "max", "n", "values"}`` for a list of numbers (None if empty)."""
    if not values:
        return None
    return {"median": statistics.median(values), "min": min(values), "max": max(values),
            "n": len(values), "values": list(values)}


def time_loads(repeats=3):
    """Seconds for ``load_mnist()`` (checksums + parse of the four files), ``repeats`` times."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        nnscratch.load_mnist()
        times.append(time.perf_counter() - start)
    start = time.perf_counter()
    verify_checksums(MNIST_DIR)
    return {"load": summary(times), "checksums": time.perf_counter() - start}


# -- the rows ----------------------------------------------------------------------------
@dataclass
class Row:
    """One implementation, timed once per repetition.

    Attributes
    ----------
    label : str
        The table's first column.
    job : dict
        ``{"kind": "fit" | "seed" | "torch", ...}``: a worker spec, or the torch_ref.py run.
    compare : bool
        Whether its ratio to PyTorch means something (False for rows PyTorch has no twin of).
    main : bool
        The model's own nnscratch row, the one the verdict checks.
    src : str or None
        For a ``--baseline`` row, the other checkout's ``src/`` its worker imports.
    twin : Row or None
        For a ``--baseline`` row, the row of this checkout it repeats.
    results : list of dict
        One per repetition that succeeded.
    failed : str or None
        Why its process failed; the row is then dropped.
    """

    label: str
    job: dict
    compare: bool = True
    main: bool = False
    src: str | None = None
    twin: "Row | None" = None
    results: list = field(default_factory=list)
    failed: str | None = None

    @property
    def name(self):
        """The label's head, for the per-repetition lines."""
        return self.label.split(" (")[0].split(",")[0]

    def collect(self, key):
        """One field over the repetitions: the epochs' seconds flattened, else one value per repetition."""
        if key in ("sec_per_epoch", "measured"):
            return [v for r in self.results for v in r.get(key, [])]
        return [r.get(key) for r in self.results]


def plural(n, word):
    return f"{n} {word}" + ("" if n == 1 else "es" if word.endswith("h") else "s")


def plan_rows(options, model):
    """The rows of one repetition, in the order they run; the first is the model's nnscratch row.

    ``options`` is bench.py's parsed command line (batches, epochs_per_rep,
    layer_times, torch_python, naive_batches, also, seed_baseline, seed_samples,
    seed_dtype, baseline).
    """
    images = options.batches * model.batch or N_TRAIN
    extra = f", EXTRAPOLATED from {plural(options.batches, 'batch')}" if options.batches else ""

    def fit(variant, n_images, warmup, evaluate=True, layer_times=False):
        return {"kind": "fit", "model": model.name, "variant": variant, "images": n_images,
                "epochs": options.epochs_per_rep, "warmup": warmup, "evaluate": evaluate,
                "layer_times": layer_times}

    main_label = {"cnn": 'nnscratch fast (impl="fast")', "lstm": "nnscratch LSTM 128"}.get(
        model.name, "nnscratch (fit, float32, batched)")
    warmup = min(WARM_UP_IMAGES, images)
    rows = [Row(main_label + extra, fit(None, images, warmup, layer_times=options.layer_times), main=True)]
    if options.torch_python:
        rows.append(Row(f"PyTorch CPU reference (torch_ref.py {model.torch_name}){extra}",
                        {"kind": "torch", "model": model.torch_name}))
    if model.name == "cnn" and options.naive_batches:  # one untimed warm-up batch, then the few timed ones
        rows.append(Row(f'nnscratch naive (impl="naive"), EXTRAPOLATED from '
                        f'{plural(options.naive_batches, "batch")}',
                        fit("naive", options.naive_batches * model.batch, model.batch, evaluate=False)))
    for kind in options.also:
        rows.append(Row(f"nnscratch {kind.upper()} 128 (no PyTorch row){extra}",
                        fit(kind, images, warmup), compare=False))
    if options.seed_baseline:
        rows.append(Row(f"seed per-sample loop ({options.seed_dtype}), EXTRAPOLATED from "
                        f"{options.seed_samples:,}",
                        {"kind": "seed", "model": "mlp50", "samples": options.seed_samples,
                         "dtype": options.seed_dtype}))
    if options.baseline:  # each nnscratch row again, right after it, on the other checkout's library
        src = os.path.join(options.baseline, "src")
        with_twins = []
        for row in rows:
            with_twins.append(row)
            if row.job["kind"] == "fit":
                job = dict(row.job, layer_times=False)
                with_twins.append(Row(f"baseline {row.label}", job, compare=row.compare, src=src, twin=row))
        rows = with_twins
    return rows


# -- child processes -----------------------------------------------------------------
def run_child(cmd, timeout, env=None):
    """Run ``cmd`` in the repository root; returns (stdout, peak RSS of that process in MB).

    Raises RuntimeError when it fails or runs past ``timeout`` seconds. The
    peak comes from ``os.wait4``, which reports the rusage of that one child
    (RUSAGE_CHILDREN would give the largest of all children so far).
    """
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        proc = subprocess.Popen(cmd, stdout=out, stderr=err, text=True, cwd=REPO, env=env)
        killed = threading.Event()
        timer = threading.Timer(timeout, lambda: (killed.set(), proc.kill()))
        timer.start()
        try:
            _, status, usage = os.wait4(proc.pid, 0)
        finally:
            timer.cancel()
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read(), err.read()
    if killed.is_set():
        raise RuntimeError(f"{' '.join(cmd[:4])} ... ran past {timeout} s and was killed")
    if proc.returncode != 0:
        tail = (stderr or stdout).strip().splitlines()[-5:] or ["(no output)"]
        raise RuntimeError(f"{' '.join(cmd[:4])} ... exited with {proc.returncode}:\n    "
                           + "\n    ".join(tail))
    return stdout, maxrss_mb(usage.ru_maxrss)


def nnscratch_job(spec, timeout, src=None):
    """Run ``worker.run(spec)`` in a fresh process; its result plus ``peak_rss_mb``.

    ``src``: import nnscratch and model_zoo from that folder instead of this checkout's.
    """
    env = dict(os.environ, BENCH_NNSCRATCH_SRC=src) if src else None
    return worker_result([sys.executable, "-m", "benchmarks.worker", json.dumps(spec)], timeout, env)


def worker_result(cmd, timeout, env=None):
    """Run a worker process ``cmd`` (``run_child``); the JSON of its last ``RESULT_TAG`` line plus
    ``peak_rss_mb``. bench.py's, bench_chargpt.py's and scaling.py's workers all print that line."""
    stdout, rss = run_child(cmd, timeout, env)
    lines = [line for line in stdout.splitlines() if line.startswith(RESULT_TAG)]
    if not lines:
        raise RuntimeError(f"the worker printed no result:\n{stdout[-500:]}")
    return dict(json.loads(lines[-1][len(RESULT_TAG):]), peak_rss_mb=rss)


def torch_job(python, model_name, epochs, batches, data_dir, timeout):
    """Run torch_ref.py MODEL once: its sec_per_epoch list, test_acc, threads, torch_info and peak_rss_mb."""
    cmd = [python, TORCH_REF, model_name, "--epochs", str(epochs), "--data", data_dir]
    if batches:
        cmd += ["--batches", str(batches)]
    stdout, rss = run_child(cmd, timeout)
    result = {"sec_per_epoch": [], "test_acc": None, "threads": None, "torch_info": None, "peak_rss_mb": rss}
    for line in stdout.splitlines():
        if line.startswith("torch_info "):
            result["torch_info"] = json.loads(line[len("torch_info "):])
        m = re.search(r"sec_per_epoch\s+([0-9.]+)", line)
        if m:
            result["sec_per_epoch"].append(float(m.group(1)))
            acc, threads = re.search(r"test_acc\s+([0-9.]+)", line), re.search(r"threads\s+(\d+)", line)
            result["test_acc"] = float(acc.group(1)) if acc else result["test_acc"]
            result["threads"] = int(threads.group(1)) if threads else result["threads"]
    if not result["sec_per_epoch"]:
        raise RuntimeError(f"no sec_per_epoch in the output of {' '.join(cmd)}:\n{stdout[-500:]}")
    return result


def torch_data_dir(folder, mnist_dir, test_images):
    """Fill ``folder`` with MNIST for torch_ref.py: the training files linked, the test files cut
    to their first ``test_images`` records (torch_ref.py evaluates the whole test set in one
    forward pass, which for the CNN would set the process's peak memory, not the training)."""
    for name in ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"):
        try:
            os.symlink(os.path.join(mnist_dir, name), os.path.join(folder, name))
        except OSError:
            shutil.copy(os.path.join(mnist_dir, name), os.path.join(folder, name))
    for name in ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"):
        with gzip.open(os.path.join(mnist_dir, name), "rb") as f:
            raw = f.read()
        ndim = raw[3]
        dims = struct.unpack(">" + "I" * ndim, raw[4:4 + 4 * ndim])
        record = int(np.prod(dims[1:], dtype=np.int64))
        head = 4 + 4 * ndim
        with gzip.open(os.path.join(folder, name), "wb", compresslevel=1) as f:
            f.write(raw[:4] + struct.pack(">I", test_images) + raw[8:head]
                    + raw[head:head + test_images * record])
    return folder


def run_rep(rows, rep, options, torch_dir):
    """One repetition: every row once, in order, each in a fresh process.

    Appends each result to its row; a row whose process fails is marked
    ``failed`` and dropped from ``rows`` (with all its repetitions), and the
    others go on.

    Returns
    -------
    list of (Row, result dict or None, error message or None), in the order run
    """
    outcomes = []
    last = rep == options.reps - 1  # the per-layer table comes from the last repetition's network
    for row in rows:
        try:
            if row.job["kind"] == "torch":
                result = torch_job(options.torch_python, row.job["model"], options.epochs_per_rep,
                                   options.batches, torch_dir, options.timeout)
            else:
                job = dict(row.job, seed=rep, layer_times=bool(row.job.get("layer_times")) and last)
                result = nnscratch_job(job, options.timeout, row.src)
        except (RuntimeError, OSError) as e:
            row.failed = str(e)
            outcomes.append((row, None, str(e)))
            continue
        row.results.append(result)
        outcomes.append((row, result, None))
    rows[:] = [row for row in rows if row.failed is None]
    return outcomes


def git_state(path):
    """``"<short commit>"`` of the checkout at ``path``, ``" + uncommitted changes"`` where there are
    some, or None outside git."""
    try:
        commit = subprocess.run(["git", "-C", path, "rev-parse", "--short", "HEAD"], capture_output=True,
                                text=True, timeout=10, check=False).stdout.strip()
        dirty = subprocess.run(["git", "-C", path, "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=10, check=False).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return (commit + (" + uncommitted changes" if dirty else "")) if commit else None
