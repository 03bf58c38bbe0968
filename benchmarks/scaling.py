"""Seconds per training epoch against batch size and against width, nnscratch beside PyTorch.

The model is the MLP 784-H-10 (FC H, ReLU, FC 10, softmax with
cross-entropy), float32, plain SGD with lr 0.1 (as ``mlp50``: no optimizer
state, so the times are the layers' and the loop's), on the 60,000 MNIST
training images. Two sweeps:

- batch size 16, 32, 64, 128, 256, 512 at H = 100 (``--batch-sizes``, ``--hidden``);
- width H = 64, 128, ..., 4096 at batch size 128 (``--widths``, ``--batch``).

How a point is timed. nnscratch: ``net.fit(..., verbose=0)``'s
``history["time"]``, the loop a user runs; PyTorch: ``torch_ref.py mlp
--hidden H --batch-size B``, a plain loop (zero_grad, forward, loss,
backward, step). Each first trains a tenth of the batches it will time (at
least 3), untimed, on the same network and optimizer, so that first-call
costs and allocations stay out of the clock; then both time the same
batches of B images: ``--images`` images (default 60,000: a whole epoch,
60,000 // B full batches) at widths up to 512, and ``--images`` x 512 / H
beyond, at least 10 batches (a batch of width H costs about H / 512 times
one of width 512, so every wide point costs about as much as the width-512
one: 234 batches of 128 at H = 1024, 59 at H = 4096). A point timed on
fewer batches than an epoch is EXTRAPOLATED to one, in both libraries as
torch_ref.py does it: seconds x (60,000 // B) / batches timed.

Processes: every point runs in a fresh process per library (``--worker``
below, and ``torch_ref.py`` under the Python of PyTorch's own virtual
environment), nnscratch then PyTorch, point after point, in each of
``--reps`` repetitions; the tables give medians. A fresh process costs
about 3 s on a 2-core machine (PyTorch's import and gzip parse, nnscratch's
``load_mnist``), most of a default run's (78 processes, about 5 minutes),
but no point inherits another's allocator state, caches or thread pools,
each point's peak resident memory is its own (``os.wait4``), and the pairs,
interleaved point by point, see the same machine load. (One process per
library and sweep would save about 3 minutes and lose all three.)

Usage:
    python benchmarks/scaling.py [--reps 3] [--batch-sizes 16,32,...] [--widths 64,128,...]
        [--hidden 100] [--batch 128] [--images 60000] [--no-torch] [--torch-python PATH]
        [--csv PATH] [--json PATH] [--plot PATH]
    python benchmarks/scaling.py --reps 1 --images 2000 --batch-sizes 32,256 --widths 64,1024   # smoke

Nothing is written unless ``--csv``, ``--json`` or ``--plot`` is given.
"""
import argparse
import csv
import json
import os
import re
import sys
import tempfile
import time
from dataclasses import dataclass, field

if __package__ in (None, ""):  # run as a script: make the benchmarks package importable
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from benchmarks import REPO, harness, machine, report  # noqa: E402  (first: it puts src/ on sys.path)
from benchmarks.bench import choose_torch  # noqa: E402
from benchmarks.harness import RESULT_TAG, summary  # noqa: E402
from benchmarks.models import N_TRAIN  # noqa: E402
import nnscratch  # noqa: E402  (after benchmarks, which chose the src/ it comes from)
from nnscratch.data import MNIST_DIR  # noqa: E402

BATCH_SIZES = (16, 32, 64, 128, 256, 512)
WIDTHS = (64, 128, 256, 512, 1024, 2048, 4096)
WHOLE_EPOCH_WIDTH = 512   # up to this width a point times --images images; wider, proportionally fewer
MIN_BATCHES = 10          # fewer timed batches would be mostly noise
LR = 0.1
TORCH_TEST_IMAGES = 100   # torch_ref.py evaluates its test set once; we read only its seconds


def comma_ints(text):
    """``"16,32,64"`` -> ``[16, 32, 64]`` (argparse type); ``""`` -> ``[]``, which skips that sweep."""
    try:
        values = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a comma list of integers, got {text!r}") from None
    if any(v < 1 for v in values):
        raise argparse.ArgumentTypeError(f"sizes must be positive, got {text!r}")
    return values


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--reps", type=int, default=3, help="repetitions; the tables give medians (default 3)")
    p.add_argument("--batch-sizes", type=comma_ints, default=list(BATCH_SIZES),
                   help="the batch sweep's sizes, a comma list ('' skips it; default 16,...,512)")
    p.add_argument("--widths", type=comma_ints, default=list(WIDTHS),
                   help="the width sweep's hidden sizes, a comma list ('' skips it; default 64,...,4096)")
    p.add_argument("--hidden", type=int, default=100, help="H of the batch sweep (default 100)")
    p.add_argument("--batch", type=int, default=128, help="batch size of the width sweep (default 128)")
    p.add_argument("--images", type=int, default=N_TRAIN,
                   help=f"images timed per point up to width {WHOLE_EPOCH_WIDTH}, wider ones x "
                        f"{WHOLE_EPOCH_WIDTH}/H; fewer than an epoch are extrapolated (default {N_TRAIN}: "
                        f"whole epochs)")
    harness.add_torch_arguments(p)
    p.add_argument("--timeout", type=float, default=600, help="seconds allowed to each process (default 600)")
    p.add_argument("--csv", metavar="PATH", help="write one line per point as CSV")
    p.add_argument("--json", metavar="PATH", help="write every number as JSON")
    p.add_argument("--plot", metavar="PATH",
                   help="draw the two sweeps as a PNG (e.g. benchmarks/scaling.png)")
    p.add_argument("--worker", metavar="SPEC_JSON", help=argparse.SUPPRESS)  # the nnscratch child process
    a = p.parse_args(argv)
    if a.reps < 1 or a.hidden < 1 or a.images < 1:
        p.error("--reps, --hidden and --images must be >= 1")
    if max(a.batch_sizes + [a.batch]) > N_TRAIN:
        p.error(f"batch sizes must be at most {N_TRAIN}")
    return a


# -- the points ------------------------------------------------------------------------------
@dataclass
class Point:
    """One size of one sweep, and what each library measured there, one result per repetition."""

    sweep: str       # "batch" or "width": which of hidden and batch varies
    hidden: int
    batch: int
    batches: int     # timed, the same in both libraries
    warmup: int      # untimed batches first
    nnscratch: list = field(default_factory=list)
    pytorch: list = field(default_factory=list)

    @property
    def size(self):
        return self.batch if self.sweep == "batch" else self.hidden

    @property
    def epoch_batches(self):
        return N_TRAIN // self.batch

    @property
    def extrapolated(self):
        return self.batches < self.epoch_batches


def timed_batches(hidden, batch, images):
    """The batches timed at a point: ``images`` images up to width ``WHOLE_EPOCH_WIDTH``,
    ``images x WHOLE_EPOCH_WIDTH / hidden`` wider, in whole batches, at least ``MIN_BATCHES``
    and at most an epoch's full batches."""
    wanted = images * min(1.0, WHOLE_EPOCH_WIDTH / hidden) / batch
    epoch = N_TRAIN // batch
    return min(epoch, max(MIN_BATCHES, round(wanted)))


def plan_points(a):
    """The batch sweep's points, then the width sweep's, in the order they run."""
    sizes = [("batch", a.hidden, b) for b in a.batch_sizes] + [("width", h, a.batch) for h in a.widths]
    points = []
    for sweep, hidden, batch in sizes:
        batches = timed_batches(hidden, batch, a.images)
        points.append(Point(sweep, hidden, batch, batches, warmup=min(batches, max(3, batches // 10))))
    return points


# -- nnscratch: the child process --------------------------------------------------------------
def build_mlp(hidden, seed):
    """FC ``hidden``, ReLU, FC 10, softmax on (N, 784): ``models.build_mlp50`` at any width."""
    net = nnscratch.Network(784, cost="cross_entropy", seed=seed)
    net.add_fc_layer(hidden)
    net.add_relu_layer()
    net.add_fc_layer(10)
    net.add_softmax_layer()
    return net


def nnscratch_worker(spec):
    """Warm up on ``spec["warmup"]`` batches, then time ``spec["batches"]`` with ``net.fit``.

    Returns
    -------
    dict with ``measured`` (fit's seconds), ``sec_per_epoch`` (extrapolated to 60,000 // B
    batches), ``loss`` (the timed fit's mean) and ``training_peak_rss_mb`` (after loading MNIST
    to the end)
    """
    X, y, _, _ = nnscratch.load_mnist()
    harness.reset_peak_rss()
    B, hidden = spec["batch"], spec["hidden"]
    net, optimizer = build_mlp(hidden, spec["seed"]), nnscratch.SGD(lr=LR)
    if spec["warmup"]:  # the same network and optimizer as the timed fit, as torch_ref.py's warm-up
        warm = spec["warmup"] * B
        net.fit(X[:warm], y[:warm], epochs=1, batch_size=B, optimizer=optimizer, verbose=0)
    n = spec["batches"] * B
    history = net.fit(X[:n], y[:n], epochs=1, batch_size=B, optimizer=optimizer, verbose=0)
    measured = history["time"][0]
    return {"measured": measured, "sec_per_epoch": measured * (N_TRAIN // B) / spec["batches"],
            "loss": history["loss"][0], "training_peak_rss_mb": harness.memory_status("VmHWM")}


# -- the parent: one process per point and library ---------------------------------------------
def nnscratch_job(point, seed, timeout):
    """``nnscratch_worker`` for ``point`` in a fresh process; its result plus ``peak_rss_mb``."""
    spec = {"hidden": point.hidden, "batch": point.batch, "batches": point.batches,
            "warmup": point.warmup, "seed": seed}
    return harness.worker_result([sys.executable, "-m", "benchmarks.scaling", "--worker", json.dumps(spec)], timeout)


def torch_command(python, point, data_dir):
    return [python, harness.TORCH_REF, "mlp", "--hidden", str(point.hidden), "--batch-size", str(point.batch),
            "--batches", str(point.batches), "--warmup-batches", str(point.warmup), "--data", data_dir]


def torch_job(python, point, data_dir, timeout):
    """``torch_ref.py mlp`` for ``point`` in a fresh process: ``sec_per_epoch``, ``threads``,
    ``torch_info`` and ``peak_rss_mb``. (``harness.torch_job`` cannot pass ``--hidden``.)"""
    stdout, rss = harness.run_child(torch_command(python, point, data_dir), timeout)
    result = {"peak_rss_mb": rss, "torch_info": None}
    for line in stdout.splitlines():
        if line.startswith("torch_info "):
            result["torch_info"] = json.loads(line[len("torch_info "):])
        elif line.startswith("mlp epoch "):
            fields = dict(re.findall(r"(\w+) ([0-9.]+)", line))
            result.update(sec_per_epoch=float(fields["sec_per_epoch"]), threads=int(fields["threads"]))
    if "sec_per_epoch" not in result:
        raise RuntimeError(f"no sec_per_epoch in the output of torch_ref.py mlp:\n{stdout[-500:]}")
    return result


def run_point(point, rep, a, torch_dir):
    """One repetition of one point: nnscratch, then PyTorch, each appended to the point's results;
    returns the progress line. A failed process is reported and leaves that repetition out."""
    parts = []
    jobs = [("nnscratch", point.nnscratch, lambda: nnscratch_job(point, rep, a.timeout))]
    if a.torch_python:
        jobs.append(("PyTorch", point.pytorch,
                     lambda: torch_job(a.torch_python, point, torch_dir, a.timeout)))
    for name, results, job in jobs:
        try:
            results.append(job())
            parts.append(f"{name} {results[-1]['sec_per_epoch']:.4f} s/epoch "
                         f"(peak {results[-1]['peak_rss_mb']:.0f} MB)")
        except (RuntimeError, OSError) as e:
            parts.append(f"{name} FAILED: {e}")
    label = f"B={point.batch}" if point.sweep == "batch" else f"H={point.hidden}"
    timed = f"{point.batches}/{point.epoch_batches} batches"
    return f"rep {rep + 1}/{a.reps} {point.sweep} {label} ({timed}): " + "; ".join(parts)


# -- the numbers ---------------------------------------------------------------------------------
def medians(point):
    """``(nnscratch summary, PyTorch summary, ratio of the medians)``; None where missing."""
    ours = summary([r["sec_per_epoch"] for r in point.nnscratch])
    theirs = summary([r["sec_per_epoch"] for r in point.pytorch])
    ratio = ours["median"] / theirs["median"] if ours and theirs else None
    return ours, theirs, ratio


def print_table(sweep, points, a):
    """One sweep's table: size, batches timed, the two medians, their ratio."""
    fixed = f"H = {a.hidden}" if sweep == "batch" else f"batch size {a.batch}"
    print(f"{'Batch size' if sweep == 'batch' else 'Width'} sweep at {fixed}: seconds per epoch, median of "
          f"{a.reps} (ratio = nnscratch / PyTorch; above 1, nnscratch is slower)")
    lines = []
    for point in points:
        ours, theirs, ratio = medians(point)
        timed = f"{point.batches} of {point.epoch_batches}" + (" EXTRAPOLATED" if point.extrapolated else "")
        lines.append((str(point.size), timed, report.fmt(ours and ours["median"], 4),
                      report.fmt(theirs and theirs["median"], 4), report.fmt(ratio, 2)))
    report.print_rows(("batch size" if sweep == "batch" else "hidden H", "batches timed",
                       "nnscratch s/epoch", "PyTorch s/epoch", "ratio"), lines)
    print()


def point_record(point):
    """One point as a flat dict: the CSV's line, and with the per-repetition results, the JSON's."""
    ours, theirs, ratio = medians(point)
    pick = lambda s, key: s and s[key]
    peak = lambda results: max((r["peak_rss_mb"] for r in results), default=None)
    return {"sweep": point.sweep, "batch_size": point.batch, "hidden": point.hidden,
            "batches_timed": point.batches, "batches_per_epoch": point.epoch_batches,
            "warmup_batches": point.warmup, "extrapolated": point.extrapolated,
            "nnscratch_median_s": pick(ours, "median"), "nnscratch_min_s": pick(ours, "min"),
            "nnscratch_max_s": pick(ours, "max"), "torch_median_s": pick(theirs, "median"),
            "torch_min_s": pick(theirs, "min"), "torch_max_s": pick(theirs, "max"), "ratio": ratio,
            "nnscratch_reps": pick(ours, "n") or 0, "torch_reps": pick(theirs, "n") or 0,
            "nnscratch_peak_rss_mb": peak(point.nnscratch), "torch_peak_rss_mb": peak(point.pytorch)}


def write_csv(path, points):
    """``point_record`` per line, seconds to the microsecond, ratios to 4 decimals, MB to 0.1."""
    rounded = lambda key, v: v if not isinstance(v, float) else round(v, 4 if key == "ratio" else
                                                                        1 if key.endswith("_mb") else 6)
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    records = [{k: rounded(k, v) for k, v in point_record(p).items()} for p in points]
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(records[0]))
        writer.writeheader()
        writer.writerows(records)
    print(f"CSV written to {path}")


def plot(path, points, title):
    """Two columns (s/epoch against batch size, against width), each over its ratio panel; log axes."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.ticker import FuncFormatter
    # plain numbers on the log axes ("0.5", "20", not 5x10^-1), the minor ticks labelled at 2 and 5 only
    plain = FuncFormatter(lambda y, _: f"{y:g}")
    two_five = FuncFormatter(lambda y, _: f"{y:g}" if y > 0 and f"{y:e}"[0] in "25" else "")
    sweeps = [s for s in ("batch", "width") if any(p.sweep == s for p in points)]
    fig = Figure(figsize=(5.5 * len(sweeps), 6.5))
    FigureCanvasAgg(fig)
    grid = fig.add_gridspec(2, len(sweeps), height_ratios=(3, 1.3), hspace=0.08, wspace=0.25)
    for column, sweep in enumerate(sweeps):
        mine = [p for p in points if p.sweep == sweep]
        sizes = [p.size for p in mine]
        ours, theirs, ratios = zip(*(medians(p) for p in mine))
        top = fig.add_subplot(grid[0, column])
        bottom = fig.add_subplot(grid[1, column], sharex=top)
        top.plot(sizes, [s and s["median"] for s in ours], "o-", label="nnscratch (fit)")
        if any(theirs):
            top.plot(sizes, [s and s["median"] for s in theirs], "s-", label="PyTorch (CPU)")
            bottom.plot(sizes, [r if r is not None else float("nan") for r in ratios], "o-", color="C2")
        bottom.axhline(1.0, color="grey", linestyle=":")
        top.set_xscale("log", base=2)
        top.set_yscale("log")
        bottom.set_yscale("log")  # 0.5x and 2x equally far from 1
        top.set_title(f"against batch size (H = {mine[0].hidden})" if sweep == "batch"
                      else f"against width (batch size {mine[0].batch})")
        top.set_ylabel("seconds per epoch (median)")
        top.tick_params(labelbottom=False)
        bottom.set_xlabel("batch size" if sweep == "batch" else "hidden units H")
        bottom.set_ylabel("nnscratch / PyTorch")
        bottom.set_xticks(sizes, [str(s) for s in sizes])
        for ax in (top, bottom):
            ax.grid(alpha=0.3, which="both")
            ax.yaxis.set_major_formatter(plain)
            ax.yaxis.set_minor_formatter(two_five)
        top.legend()
    fig.suptitle(title, fontsize=9)
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    fig.savefig(path, dpi=110, bbox_inches="tight")
    print(f"plot written to {path}")


# -- the command line ------------------------------------------------------------------------------
def print_header(a, points, this, torch_note):
    print("nnscratch scaling: seconds per training epoch of the MLP 784-H-10 (ReLU, softmax cross-entropy, "
          f"SGD lr {LR}, float32) on the 60,000 MNIST training images")
    print(f"CPU: {this['cpu']}, {this['cpus']} CPUs visible, {this['machine']}")
    print(f"python {this['python']}, numpy {this['numpy']}, nnscratch {nnscratch.__version__} "
          f"({harness.git_state(REPO) or 'not a git checkout'})")
    pinned = ", ".join(f"{k}={v}" for k, v in this["thread_variables"].items()) or "threads not pinned"
    print(f"NumPy BLAS (threadpoolctl; {pinned}): {machine.describe_blas(this['blas'])}")
    print(f"load average at start (1, 5, 15 min): {machine.loadavg()}")
    if torch_note:
        print(torch_note)
    else:
        example = torch_command(a.torch_python, points[0], "DIR")
        print("PyTorch: " + " ".join(os.path.relpath(c, REPO) if c == harness.TORCH_REF else c
                                     for c in example)
              + " (DIR: the training files and 100 test images), one per point")
    processes = 2 if a.torch_python else 1
    print(f"{len(points)} points x {a.reps} repetitions x {processes} fresh process(es); each library "
          f"trains its warm-up batches untimed, then times the same batches (EXTRAPOLATED below an "
          f"epoch)\n", flush=True)


def main(argv=None):
    a = parse_args(argv)
    if a.worker:
        print(RESULT_TAG + json.dumps(nnscratch_worker(json.loads(a.worker))), flush=True)
        return 0
    points = plan_points(a)
    if not points:
        print("no points: both --batch-sizes and --widths are empty")
        return 1
    torch_note = choose_torch(a)
    this = machine.describe()
    load_start, started = machine.loadavg(), time.perf_counter()
    print_header(a, points, this, torch_note)
    with tempfile.TemporaryDirectory(prefix="scaling-mnist-") as tmp:
        torch_dir = harness.torch_data_dir(tmp, MNIST_DIR, TORCH_TEST_IMAGES) if a.torch_python else None
        for rep in range(a.reps):  # the pairs interleaved point by point, so both see the same load
            for point in points:
                print(run_point(point, rep, a, torch_dir), flush=True)
    load_end = machine.loadavg()
    print(f"load average at end (1, 5, 15 min): {load_end}; {time.perf_counter() - started:.0f} s in all\n")

    torch_results = [r for p in points for r in p.pytorch]
    torch_info = torch_results[-1]["torch_info"] if torch_results else None
    if torch_results:
        print(report.describe_torch(torch_info, torch_results[-1]["threads"]))
    print(f"NumPy: {machine.describe_blas(this['blas'])}; CPU: {this['cpu']}\n")
    for sweep in ("batch", "width"):
        if any(p.sweep == sweep for p in points):
            print_table(sweep, [p for p in points if p.sweep == sweep], a)

    if a.csv:
        write_csv(a.csv, points)
    if a.json:
        report.write_json(a.json, {
            "model": f"784-H-10 ReLU MLP, softmax cross-entropy, SGD lr {LR}, float32, MNIST 60,000",
            "options": {k: getattr(a, k)
                        for k in ("reps", "batch_sizes", "widths", "hidden", "batch", "images")},
            "machine": this, "nnscratch": nnscratch.__version__, "checkout": harness.git_state(REPO),
            "torch_info": torch_info, "torch_note": torch_note,
            "loadavg_start": load_start, "loadavg_end": load_end,
            "points": [dict(point_record(p), nnscratch_results=p.nnscratch,
                            torch_results=[{k: v for k, v in r.items() if k != "torch_info"}
                                           for r in p.pytorch])
                       for p in points]})
    if a.plot:
        torch_version = f"PyTorch {torch_info['version']}" if torch_info else "PyTorch not run"
        blas = machine.describe_blas(this["blas"])
        plot(a.plot, points, f"MLP 784-H-10, SGD, float32, MNIST: nnscratch {nnscratch.__version__} "
                             f"(numpy {this['numpy']}, {blas}) vs {torch_version}\n{this['cpu']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
