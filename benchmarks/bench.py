"""Seconds per training epoch and peak memory of nnscratch networks on MNIST, beside PyTorch.

Models (``--model``; ``benchmarks/models.py`` builds them, ``torch_ref.py``
their PyTorch twins; details and targets in benchmarks/README.md): ``mlp50``
(default), ``mlp800``, ``cnn`` (with the naive CNN, extrapolated from
``--naive-batches``), ``lstm`` (``--also gru,rnn`` adds nnscratch-only rows).

The time is the training loop a user runs (``history["time"]`` of
``net.fit``, progress bar off); ``--batches N`` times N batches instead of an
epoch and extrapolates. Every training runs in a fresh process
(``python -m benchmarks.worker``, or ``torch_ref.py MODEL`` under the Python
of PyTorch's own virtual environment), whose peak resident set size comes
from ``os.wait4``. One run makes ``--reps`` repetitions, the rows
interleaved in each, and reports medians. The header names the CPU, NumPy's
BLAS kernel and PyTorch's CPU kernels, since the ratios differ between them.

The limit: the parent measures the machine's float32 GEMM rate
(``machine.gemm_rate``: a 1024^3 product, then each of the model's own
product shapes) at the start and again at the end of the run, prints both
and keeps the higher. Below the table, each row gets its floor, the matrix
products of one epoch (``layer_times.step_products``: each product layer's
forward, weight gradient and input gradient, checked against its
``flops()``) at that rate, and its median epoch over the floor.

Usage:
    python benchmarks/bench.py [--model mlp50|mlp800|cnn|lstm] [--reps R] [--epochs-per-rep 1]
                               [--batches N] [--naive-batches 3] [--also gru,rnn]
                               [--layer-times] [--no-torch] [--torch-python PATH]
                               [--torch-test-images K] [--seed-baseline] [--baseline DIR]
                               [--json results.json]

PyTorch is only ever run in a subprocess from its own virtual environment
(``--torch-python``, else $NNSCRATCH_TORCH_PYTHON, else ~/torchref/bin/python);
it is not a dependency of the project.
"""
import argparse
import os
import statistics
import sys
import tempfile
from collections import Counter

if __package__ in (None, ""):  # run as a script: make the benchmarks package importable
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from benchmarks import REPO, harness, layer_times, machine, report  # noqa: E402
from benchmarks.harness import plural, summary  # noqa: E402
from benchmarks.models import ALSO_KINDS, MODELS, N_TRAIN  # noqa: E402
import nnscratch  # noqa: E402
from nnscratch.data import MNIST_DIR  # noqa: E402


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="mlp50", choices=sorted(MODELS), help="the network (default mlp50)")
    p.add_argument("--reps", type=int, default=None,
                   help="repetitions (default 5 for mlp50, 3 for the others)")
    p.add_argument("--epochs-per-rep", type=int, default=1, help="epochs per repetition (default 1)")
    p.add_argument("--batches", type=int, default=0,
                   help="time N batches per repetition and extrapolate to an epoch (default: whole epochs)")
    p.add_argument("--naive-batches", type=int, default=3,
                   help="cnn: batches of the naive CNN per repetition, extrapolated (default 3; 0 skips it)")
    p.add_argument("--also", default="", help="lstm: extra nnscratch-only rows, a comma list of gru, rnn")
    p.add_argument("--layer-times", action="store_true",
                   help="also time each layer's forward and backward, and the optimizer step, on one batch")
    harness.add_torch_arguments(p)
    p.add_argument("--torch-test-images", type=int, default=None,
                   help="test images torch_ref.py evaluates (default: the model's batch size; 10000: all)")
    p.add_argument("--seed-baseline", action="store_true",
                   help="mlp50 only: also time the seed's per-sample loop (extrapolated from --seed-samples)")
    p.add_argument("--seed-samples", type=int, default=3000,
                   help="samples per seed-baseline timing (default 3000)")
    p.add_argument("--seed-dtype", default="float64", choices=("float64", "float32"),
                   help="dtype of the seed baseline (default float64, as the seed's np.random.randn)")
    p.add_argument("--baseline", metavar="DIR", default=None,
                   help="another checkout of the project (e.g. a git worktree of the commit before a "
                        "change): each nnscratch row runs again, interleaved, on DIR/src's library")
    p.add_argument("--timeout", type=float, default=3600,
                   help="seconds allowed to each child process (default 3600)")
    p.add_argument("--json", metavar="PATH", help="write the results as JSON")
    a = p.parse_args(argv)
    model = MODELS[a.model]
    a.reps = model.reps if a.reps is None else a.reps
    a.also = [k for k in a.also.split(",") if k]
    if a.reps < 1 or a.epochs_per_rep < 1 or a.seed_samples < 32 or a.batches < 0 or a.naive_batches < 0:
        p.error("--reps and --epochs-per-rep must be >= 1, --seed-samples >= 32, --batches and "
                "--naive-batches >= 0")
    if max(a.batches, a.naive_batches) * model.batch > N_TRAIN:
        p.error(f"--batches and --naive-batches must be at most {N_TRAIN // model.batch} for {model.name}")
    if a.seed_baseline and model.name != "mlp50":
        p.error("--seed-baseline times the seed's mlp50 loop; use it with --model mlp50")
    if a.also and (model.name != "lstm" or not set(a.also) <= set(ALSO_KINDS)):
        p.error(f"--also takes {' and/or '.join(ALSO_KINDS)}, with --model lstm")
    if a.baseline:
        a.baseline = os.path.abspath(a.baseline)
        if not os.path.isdir(os.path.join(a.baseline, "src", "nnscratch")):
            p.error(f"--baseline {a.baseline}: no src/nnscratch there (give a checkout's root)")
    a.torch_test_images = min(a.torch_test_images or model.batch, 10000)
    a.seed_samples = min(a.seed_samples, N_TRAIN)
    return a


def choose_torch(a):
    """Sets ``a.torch_python`` (None when PyTorch is not run) and returns a note or None."""
    candidate = a.torch_python or os.environ.get(harness.TORCH_PYTHON_ENV) or harness.DEFAULT_TORCH_PYTHON
    a.torch_python = None
    if a.no_torch:
        return "PyTorch reference skipped (--no-torch)"
    if not os.path.exists(candidate):
        return (f"PyTorch reference skipped: {candidate} not found "
                f"(see benchmarks/README.md for the venv setup)")
    a.torch_python = candidate
    return None


def row_products(rows, model):
    """``{variant: step_products}`` of the network each row trains (the PyTorch row, the naive CNN, the
    seed's loop and a baseline row do the products of the model's own network, variant None)."""
    variants = {r.job.get("variant") for r in rows}
    return {v: layer_times.step_products(model.build(0, v), model.batch) for v in sorted(variants, key=str)}


def main(argv=None):
    a = parse_args(argv)
    model = MODELS[a.model]
    torch_note = choose_torch(a)
    rows = harness.plan_rows(a, model)
    this_machine = machine.describe()
    checkouts = {"this": harness.git_state(REPO), "baseline": a.baseline and harness.git_state(a.baseline)}
    products = row_products(rows, model)
    weights = Counter()
    for p in products.values():
        weights.update(p["flops"])
    shapes = [shape for shape, _ in weights.most_common()]  # the largest share of a floor measured first
    gemm_start = machine.gemm_rate(shapes)
    report.print_header(a, model, rows, torch_note, this_machine, nnscratch.__version__, checkouts,
                        gemm_start)
    load_start = machine.loadavg()
    loads = harness.time_loads()
    report.print_loads(loads, MNIST_DIR)

    with tempfile.TemporaryDirectory(prefix="bench-mnist-") as tmp:
        torch_dir = (MNIST_DIR if a.torch_test_images >= 10000
                     else harness.torch_data_dir(tmp, MNIST_DIR, a.torch_test_images))
        for rep in range(a.reps):
            report.print_rep(rep, a.reps, harness.run_rep(rows, rep, a, torch_dir))
    load_end = machine.loadavg()
    print(f"load average at end (1, 5, 15 min): {load_end}")
    gemm_end = machine.gemm_rate(shapes)
    print(f"the machine's float32 GEMM rate at end: {machine.describe_gemm(gemm_end)}")
    rates = machine.higher_rates(gemm_start, gemm_end)  # a busy machine only slows products down
    torch_row = next((r for r in rows if r.job["kind"] == "torch"), None)
    torch_info = torch_row.collect("torch_info")[-1] if torch_row else None
    if torch_row:
        print(report.describe_torch(torch_info, torch_row.collect("threads")[-1]))
    print()
    if not rows or not rows[0].main:
        print("the nnscratch run failed; nothing to report")
        return 1

    torch_median = statistics.median(torch_row.collect("sec_per_epoch")) if torch_row else None
    report.print_table(rows, torch_median)
    report.print_notes(a, model, rows, torch_row)
    limits = {id(r): layer_times.floor(products[r.job.get("variant")], N_TRAIN / model.batch, rates,
                                       statistics.median(r.collect("sec_per_epoch"))) for r in rows}
    report.print_limits([(r.label, limits[id(r)]) for r in rows],
                        {v or model.name: p for v, p in products.items()}, rates, machine.HIGHER_RATES)
    ours = summary(rows[0].collect("sec_per_epoch"))
    layers = rows[0].results[-1].get("layer_times")
    if layers:
        report.print_layer_times(layers, model.batch, ours["median"])
        print()
    extrapolated = f" (EXTRAPOLATED from {plural(a.batches, 'batch')})" if a.batches else ""
    line, ratio, ok = report.verdict(model, ours["median"], ours["n"], torch_median, extrapolated)
    print(line)

    if a.json:
        report.write_json(a.json, {
            "model": f"{model.name}: {model.description}, softmax cross-entropy",
            "reps": a.reps, "epochs_per_rep": a.epochs_per_rep, "batches": a.batches or None,
            "python": this_machine["python"], "numpy": this_machine["numpy"],
            "nnscratch": nnscratch.__version__, "checkouts": checkouts, "cpu": this_machine["cpu"],
            "cpus": this_machine["cpus"], "blas": this_machine["blas"],
            "thread_variables": this_machine["thread_variables"],
            "loadavg_start": load_start, "loadavg_end": load_end,
            "torch_info": torch_info,
            "torch_threads": torch_row.collect("threads")[-1] if torch_row else None,
            "torch_note": torch_note, "torch_test_images": a.torch_test_images if torch_row else None,
            "load_mnist": loads,
            "gemm": {"start": machine.gemm_json(gemm_start), "end": machine.gemm_json(gemm_end),
                     "used": machine.HIGHER_RATES},
            "rows": [{"label": r.label, "sec_per_epoch": summary(r.collect("sec_per_epoch")),
                      "floor": limits[id(r)],
                      **{key: r.collect(key) for key in ("measured", "test_acc", "peak_rss_mb",
                                                         "loaded_rss_mb", "training_peak_rss_mb",
                                                         "library")}}
                     for r in rows],
            "nnscratch_sec_per_epoch": ours,
            "torch_sec_per_epoch": summary(torch_row.collect("sec_per_epoch")) if torch_row else None,
            "layer_times": layers, "ratio_to_torch": ratio,
            "target": {"seconds": model.target_seconds, "ratio": model.target_ratio}, "pass": ok,
        })
    return 0


if __name__ == "__main__":
    sys.exit(main())
