"""Seconds per training epoch of an MLP on MNIST, against PyTorch.

Two models (``--model``), each trained on the 60,000 MNIST training images
from ``nnscratch.load_mnist()``, with cross-entropy on a softmax output:

- ``mlp50`` (default): 784-50-10, FC 50, ReLU, FC 10; batch 32; plain SGD,
  lr 0.1. Target: <= 0.35 s per epoch and <= 0.5x PyTorch.
- ``mlp800``: 784-800-800-10, ``build_mlp800()`` from src/build_network.py
  (FC 800, ReLU, dropout 0.2, twice, then FC 10); batch 128; Adam, lr 1e-3.
  Target: <= 1.0x PyTorch.

The time is the training loop only (``net.fit(..., verbose=0)``,
history["time"]). The machines this runs on are shared and noisy, so one run
of this script makes ``--reps`` repetitions and reports the median (min, max).
When the PyTorch reference is available (``../shared/bench/torch_ref.py MODEL``
run by ``--torch-python``, default ``~/torchref/bin/python``), each repetition
runs one nnscratch epoch and then one PyTorch epoch, so both see the same
machine load. Nothing is pinned; the BLAS thread counts are printed.

Also reported: the time to load MNIST (checksums and parse); with
``--layer-times``, each layer's forward and backward and the optimizer step on
one batch; with ``--seed-baseline`` (mlp50 only), the seed's per-sample loop
(one (784, 1) column at a time, gradients accumulated over the mini-batch),
timed on ``--seed-samples`` images and extrapolated to 60,000.

Usage:
    python benchmarks/bench_mlp.py [--model mlp50|mlp800] [--reps R] [--epochs-per-rep 1]
                                   [--layer-times] [--no-torch] [--torch-python PATH]
                                   [--seed-baseline] [--json results.json]

PyTorch is only ever run in a subprocess from its own virtual environment; it
is not a dependency of the project.
"""
import argparse
import json
import os
import platform
import re
import statistics
import subprocess
import sys
import time
from collections import namedtuple

import numpy as np

REPO = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
sys.path.insert(0, os.path.join(REPO, "src"))

import nnscratch  # noqa: E402
from build_network import build_mlp800  # noqa: E402
from nnscratch.data import MNIST_DIR, verify_checksums  # noqa: E402

TORCH_REF = os.path.normpath(os.path.join(REPO, "..", "shared", "bench", "torch_ref.py"))
DEFAULT_TORCH_PYTHON = os.path.expanduser("~/torchref/bin/python")
N_TRAIN = 60000


def mlp50(seed):
    net = nnscratch.Network(784, cost="cross_entropy", seed=seed)
    net.add_fc_layer(50)
    net.add_relu_layer()
    net.add_fc_layer(10)
    net.add_softmax_layer()
    return net


# One benchmarked model: how to build it and train it, and its target
# (target_seconds None: no absolute target, only the ratio to PyTorch).
Model = namedtuple("Model", "name description build batch optimizer reps target_seconds target_ratio")
MODELS = {
    "mlp50": Model("mlp50", "784-50-10 ReLU MLP, batch 32, SGD lr 0.1", mlp50, 32,
                   lambda: nnscratch.SGD(lr=0.1), 5, 0.35, 0.5),
    "mlp800": Model("mlp800", "784-800-800-10 ReLU MLP, dropout 0.2, batch 128, Adam lr 1e-3",
                    build_mlp800, 128, lambda: nnscratch.Adam(lr=1e-3), 3, None, 1.0),
}


# -- helpers ----------------------------------------------------------------------
def blas_threads():
    """``[(internal_api, num_threads), ...]`` for NumPy's BLAS, or a note why not."""
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        return "threadpoolctl not installed"
    info = [(d.get("internal_api", "?"), d.get("num_threads")) for d in threadpool_info()
            if d.get("user_api") == "blas"]
    return info or "no BLAS found by threadpoolctl"


def loadavg():
    """The 1, 5 and 15 minute load averages (None where the OS has none): another
    job on the machine shows here, and multi-threaded BLAS slows down a lot under it."""
    try:
        return tuple(round(x, 2) for x in os.getloadavg())
    except (AttributeError, OSError):
        return None


def summary(values):
    """``{"median", "min", "max", "n", "values"}`` for a list of seconds (None if empty)."""
    if not values:
        return None
    return {"median": statistics.median(values), "min": min(values), "max": max(values),
            "n": len(values), "values": list(values)}


# -- MNIST load times -------------------------------------------------------------
def time_loads(repeats=3):
    """Seconds for ``load_mnist()`` (checksums + parse of the four files), ``repeats`` times."""
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        nnscratch.load_mnist()
        times.append(time.perf_counter() - t)
    t = time.perf_counter()
    verify_checksums(MNIST_DIR)
    return {"load": summary(times), "checksums": time.perf_counter() - t}


# -- nnscratch --------------------------------------------------------------------
def nnscratch_rep(model, rep, X, y, X_test, y_test, epochs):
    """Train a fresh network (seed = ``rep``); returns (seconds per epoch, test accuracy, the network)."""
    net = model.build(seed=rep)
    history = net.fit(X, y, epochs=epochs, batch_size=model.batch, optimizer=model.optimizer(), verbose=0)
    acc = net.evaluate(X_test, y_test)["accuracy"]
    return list(history["time"]), acc, net


def warm_up(model, X, y):
    """6,400 images, untimed, so the first repetition pays no start-up costs."""
    model.build(seed=12345).fit(X[:6400], y[:6400], epochs=1, batch_size=model.batch,
                                optimizer=model.optimizer(), verbose=0)


def layer_times(net, X, y, batch, repeats=20):
    """Median seconds of each layer's forward and backward (training mode) on one batch, and of
    the optimizer step: ``[(name, forward, backward, fwd+bwd FLOPs), ...]`` and the step's seconds.

    Runs the batch through the layers in order, each layer ``repeats`` times, feeding the
    last output on; then the cost's gradient and the backward pass the same way. With a
    fused output (softmax + cross-entropy) the softmax's backward is skipped, as in ``fit``,
    and the cost row holds the cost's value and the fused gradient.
    """
    def median_time(fn):
        times = []
        for _ in range(repeats):
            t = time.perf_counter()
            result = fn()
            times.append(time.perf_counter() - t)
        return statistics.median(times), result

    targets, _ = nnscratch.training.prepare_targets(net, y[:batch], batch)
    out, forward = net._as_batch(X[:batch]), {}
    for layer in net.layers:
        forward[layer.name], out = median_time(lambda: layer.forward(out, True))
    cost = net.cost
    gradient = cost.fused_gradient if net.fused_output else cost.gradient
    cost_time, grad = median_time(lambda: (cost.value(out, targets), gradient(out, targets))[1])
    backward = {}
    for layer in (net.layers[-2::-1] if net.fused_output else net.layers[::-1]):
        backward[layer.name], grad = median_time(lambda: layer.backward(grad))
    optimizer, params = net.optimizer, net.parameters()
    step_time, _ = median_time(lambda: optimizer.step(params))
    rows = []
    for layer in net.layers:
        matmuls = 1 + (2 if layer.needs_input_grad else 1) if layer.parameters() else 0
        rows.append((f"{layer.name} ({type(layer).__name__})", forward[layer.name],
                     backward.get(layer.name), matmuls * layer.flops() * batch))
    rows.append((f"cost ({cost.name}{', fused gradient' if net.fused_output else ''})", cost_time, None, 0))
    return rows, (type(optimizer).__name__, step_time)


def print_layer_times(rows, step, batch, epoch_seconds, n_batches, repeats=20):
    ms = lambda s: "" if s is None else f"{1e3 * s:.3f}"
    total = sum(f + (b or 0) for _, f, b, _ in rows) + step[1]
    lines = [(name, ms(f), ms(b), f"{100 * (f + (b or 0)) / total:.1f}%",
              f"{flops / (f + (b or 0)) / 1e9:.1f}" if flops else "") for name, f, b, flops in rows]
    lines.append((f"optimizer step ({step[0]}, all parameters)", ms(step[1]), "",
                  f"{100 * step[1] / total:.1f}%", ""))
    print(f"Per-layer times on one batch of {batch} in training mode (median of {repeats} calls each):")
    print_rows(("", "forward ms", "backward ms", "share", "GFLOP/s"), lines)
    per_batch = epoch_seconds / n_batches
    print(f"sum of the rows: {1e3 * total:.3f} ms per batch; the median epoch: {1e3 * per_batch:.3f} ms "
          f"per batch ({n_batches} batches);\nthe difference, {1e3 * (per_batch - total):.3f} ms "
          f"({100 * (per_batch - total) / per_batch:.0f}%), is the rest of fit's loop "
          f"(batch gather, accuracy, Python)")
    if total > per_batch:
        print("WARNING: the rows add up to more than a whole batch of the epoch: something else slowed these "
              "calls down (see the load average); rerun on a quieter machine")
    print("GFLOP/s: the layer's matrix products, forward and backward, over its forward + backward time")


# -- PyTorch reference ------------------------------------------------------------
def torch_rep(python, model_name, epochs):
    """Run torch_ref.py MODEL once; returns (sec_per_epoch list, test_acc, threads) or raises."""
    cmd = [python, TORCH_REF, model_name, "--epochs", str(epochs), "--data", MNIST_DIR]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    if proc.returncode != 0:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-5:]
        raise RuntimeError(f"{' '.join(cmd)} exited with {proc.returncode}:\n    " + "\n    ".join(tail))
    times, acc, threads = [], None, None
    for line in proc.stdout.splitlines():
        m = re.search(r"sec_per_epoch\s+([0-9.]+)", line)
        if m:
            times.append(float(m.group(1)))
            a = re.search(r"test_acc\s+([0-9.]+)", line)
            th = re.search(r"threads\s+(\d+)", line)
            acc = float(a.group(1)) if a else acc
            threads = int(th.group(1)) if th else threads
    if not times:
        raise RuntimeError(f"no sec_per_epoch in the output of {' '.join(cmd)}:\n{proc.stdout[-500:]}")
    return times, acc, threads


# -- the seed's per-sample loop ---------------------------------------------------
class SeedFC:
    """The seed's dense layer on one column: ``z = W x + b``, gradients summed over the batch."""

    def __init__(self, n_in, n_out, rng, dtype):
        self.W = (rng.standard_normal((n_out, n_in)) * np.sqrt(2.0 / n_in)).astype(dtype)
        self.b = np.zeros((n_out, 1), dtype=dtype)
        self.nabla_W = np.zeros_like(self.W)
        self.nabla_b = np.zeros_like(self.b)

    def forward(self, x):
        self.x = x
        return np.dot(self.W, x) + self.b                   # (n_out, 1)

    def backward(self, delta):
        self.nabla_W += np.dot(delta, self.x.T)             # (n_out, n_in)
        self.nabla_b += delta
        return np.dot(self.W.T, delta)                      # (n_in, 1)

    def update(self, eta, m):
        self.W -= (eta / m) * self.nabla_W
        self.b -= (eta / m) * self.nabla_b
        self.nabla_W[...] = 0
        self.nabla_b[...] = 0


class SeedReLU:
    def forward(self, z):
        self.z = z
        return np.maximum(0, z)

    def backward(self, delta):
        return delta * (self.z > 0)


class SeedSoftmax:
    def forward(self, z):
        e = np.exp(z - np.max(z))
        return e / np.sum(e)


def seed_baseline(X, y, n_samples, rng, dtype):
    """Train the seed-style mlp50 (SGD lr 0.1, batch 32) on ``n_samples`` random images,
    as the seed's (x (784,1), one-hot (10,1)) tuples.

    Per mini-batch: each sample is forwarded alone, ``delta = a - y`` (the seed's
    cross_entropy_cost_prime_SM, fused with the softmax), backpropagated alone,
    its gradients added to the layer's sums; then ``W -= eta/m * nabla_W``.
    Returns the seconds spent, extrapolated to 60,000 samples, and the seconds measured.
    """
    layers = [SeedFC(784, 50, rng, dtype), SeedReLU(), SeedFC(50, 10, rng, dtype), SeedSoftmax()]
    order = rng.permutation(len(X))[:n_samples]   # the seed shuffled its list each epoch
    data = [(x.reshape(-1, 1), t.reshape(-1, 1))  # the seed's tuples, made before the clock starts
            for x, t in zip(X[order].astype(dtype), nnscratch.data.one_hot(y[order], 10).astype(dtype))]
    batch, lr = MODELS["mlp50"].batch, 0.1
    t = time.perf_counter()
    for k in range(0, len(data), batch):
        mini_batch = data[k:k + batch]
        for x, target in mini_batch:
            a = x
            for layer in layers:
                a = layer.forward(a)
            delta = a - target                  # ∂C/∂z at the softmax input
            for layer in reversed(layers[:-1]):
                delta = layer.backward(delta)
        for layer in (layers[0], layers[2]):     # the two FC layers
            layer.update(lr, len(mini_batch))
    elapsed = time.perf_counter() - t
    return elapsed * N_TRAIN / len(data), elapsed


# -- report -----------------------------------------------------------------------
def fmt(x, digits=3):
    return "n/a" if x is None else f"{x:.{digits}f}"


def print_rows(header, lines):
    """A text table: the first column left-aligned, the others right-aligned."""
    widths = [max(len(r[i]) for r in [header] + lines) for i in range(len(header))]
    out = lambda r: "  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths)))
    rule = "-" * (sum(widths) + 2 * (len(widths) - 1))
    print("\n".join([out(header), rule] + [out(r) for r in lines] + [rule]))


def print_table(rows, torch_median):
    lines = []
    for name, s in rows:
        ratio = fmt(s["median"] / torch_median, 2) if torch_median else "n/a"
        lines.append((name, fmt(s["median"]), fmt(s["min"]), fmt(s["max"]), str(s["n"]), ratio))
    print_rows(("implementation", "median s/epoch", "min", "max", "n", "ratio to PyTorch"), lines)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="mlp50", choices=sorted(MODELS), help="the network (default mlp50)")
    p.add_argument("--reps", type=int, default=None, help="repetitions (default 5 for mlp50, 3 for mlp800)")
    p.add_argument("--epochs-per-rep", type=int, default=1, help="epochs per repetition (default 1)")
    p.add_argument("--layer-times", action="store_true",
                   help="also time each layer's forward and backward, and the optimizer step, on one batch")
    p.add_argument("--no-torch", action="store_true", help="skip the PyTorch reference")
    p.add_argument("--torch-python", default=None,
                   help=f"python with torch installed (default {DEFAULT_TORCH_PYTHON} if it exists)")
    p.add_argument("--seed-baseline", action="store_true",
                   help="mlp50 only: also time the seed's per-sample loop (extrapolated from --seed-samples)")
    p.add_argument("--seed-samples", type=int, default=3000, help="samples per seed-baseline timing (default 3000)")
    p.add_argument("--seed-dtype", default="float64", choices=("float64", "float32"),
                   help="dtype of the seed baseline (default float64, as the seed's np.random.randn)")
    p.add_argument("--json", metavar="PATH", help="write the results as JSON")
    a = p.parse_args(argv)
    model = MODELS[a.model]
    a.reps = model.reps if a.reps is None else a.reps
    if a.reps < 1 or a.epochs_per_rep < 1 or a.seed_samples < 32:
        p.error("--reps and --epochs-per-rep must be >= 1, --seed-samples >= 32")
    if a.seed_baseline and model.name != "mlp50":
        p.error("--seed-baseline times the seed's mlp50 loop; use it with --model mlp50")
    a.seed_samples = min(a.seed_samples, N_TRAIN)

    # Which PyTorch, if any.
    torch_python, torch_note, candidate = None, None, a.torch_python or DEFAULT_TORCH_PYTHON
    if a.no_torch:
        torch_note = "PyTorch reference skipped (--no-torch)"
    elif not os.path.exists(candidate):
        torch_note = (f"PyTorch reference skipped: {candidate} not found "
                      f"(see benchmarks/README.md for the one-line venv setup)")
    elif not os.path.exists(TORCH_REF):
        torch_note = f"PyTorch reference skipped: {TORCH_REF} not found"
    else:
        torch_python = candidate

    print(f"nnscratch {model.name} benchmark: {model.description}, 60,000 MNIST images")
    print(f"python {platform.python_version()}, numpy {np.__version__}, nnscratch {nnscratch.__version__}, "
          f"{os.cpu_count()} CPUs visible, {platform.machine()}")
    threads = blas_threads()
    print(f"NumPy BLAS threads (not pinned): {threads}")
    load_start = loadavg()
    print(f"load average at start (1, 5, 15 min): {load_start}")
    if torch_note:
        print(torch_note)
    else:
        print(f"PyTorch reference: {torch_python} {os.path.relpath(TORCH_REF, REPO)} {model.name} "
              f"(a fresh process per repetition; its s/epoch excludes start-up)")
    order = ["nnscratch"] + (["PyTorch"] if torch_python else []) + (["seed baseline"] if a.seed_baseline else [])
    print(f"{a.reps} repetitions x {a.epochs_per_rep} epoch(s)"
          + (f", interleaved: {' / '.join(order)} in each" if len(order) > 1 else "") + "\n")

    # MNIST load times.
    loads = time_loads()
    X, y, X_test, y_test = nnscratch.load_mnist()
    print(f"MNIST load_mnist() from {os.path.relpath(MNIST_DIR, REPO)}, median of {loads['load']['n']}: "
          f"{loads['load']['median']:.2f} s (min {loads['load']['min']:.2f}, max {loads['load']['max']:.2f}); "
          f"SHA-256 checks alone {loads['checksums']:.2f} s\n")

    warm_up(model, X, y)
    ours, accs, torch_times, torch_accs, torch_threads, seed_times = [], [], [], [], None, []
    seed_rng = np.random.default_rng(0)
    for rep in range(a.reps):
        times, acc, net = nnscratch_rep(model, rep, X, y, X_test, y_test, a.epochs_per_rep)
        ours += times
        accs.append(acc)
        line = f"rep {rep + 1}/{a.reps}: nnscratch " + " ".join(f"{s:.3f}" for s in times) + f" s (test acc {acc:.4f})"
        if torch_python:
            try:
                t_times, t_acc, torch_threads = torch_rep(torch_python, model.name, a.epochs_per_rep)
                torch_times += t_times
                torch_accs.append(t_acc)
                line += "; PyTorch " + " ".join(f"{s:.2f}" for s in t_times) + f" s (test acc {t_acc:.4f})"
            except (RuntimeError, OSError, subprocess.TimeoutExpired) as e:
                print(f"PyTorch reference failed, skipping it from now on: {e}")
                torch_python, torch_note = None, f"PyTorch reference failed: {e}"
        if a.seed_baseline:
            extrapolated, measured = seed_baseline(X, y, a.seed_samples, seed_rng, np.dtype(a.seed_dtype))
            seed_times.append(extrapolated)
            line += f"; seed loop {measured:.2f} s for {a.seed_samples} -> {extrapolated:.1f} s/epoch"
        print(line, flush=True)
    load_end = loadavg()
    print(f"load average at end (1, 5, 15 min): {load_end}")
    if torch_threads is not None:
        print(f"PyTorch threads (torch.get_num_threads(), not pinned): {torch_threads}")
    print()

    ours_s, torch_s, seed_s = summary(ours), summary(torch_times), summary(seed_times)
    rows = [("nnscratch (fit, float32, batched)", ours_s)]
    if torch_s:
        rows.append(("PyTorch CPU reference (torch_ref.py)", torch_s))
    if seed_s:
        rows.append((f"seed per-sample loop ({a.seed_dtype}), EXTRAPOLATED from {a.seed_samples:,}", seed_s))
    torch_median = torch_s["median"] if torch_s else None
    print_table(rows, torch_median)
    if seed_s:
        print(f"(the seed row times {a.seed_samples:,} samples per repetition and multiplies by "
              f"{N_TRAIN / a.seed_samples:g}; it is an estimate, not a full epoch)")
    print()

    layers = None
    if a.layer_times:  # on the last repetition's network, with its optimizer
        layer_rows, step = layer_times(net, X, y, model.batch)
        print_layer_times(layer_rows, step, model.batch, ours_s["median"], -(-N_TRAIN // model.batch))
        print()
        layers = {"batch": model.batch, "optimizer_step_s": step[1],
                  "rows": [{"layer": n, "forward_s": f, "backward_s": b} for n, f, b, _ in layer_rows]}

    med = ours_s["median"]
    head = f"nnscratch {model.name}: {med:.3f} s/epoch (median of {ours_s['n']}), "
    seconds = f"<= {model.target_seconds} s and " if model.target_seconds else ""
    ok_time = model.target_seconds is None or med <= model.target_seconds
    if torch_median:
        ratio = med / torch_median
        ok = ok_time and ratio <= model.target_ratio
        verdict = (head + f"PyTorch {torch_median:.2f} s/epoch, ratio {ratio:.2f}; target {seconds}"
                   f"<= {model.target_ratio}x PyTorch: {'PASS' if ok else 'FAIL'}")
    elif model.target_seconds:
        ratio, ok = None, ok_time
        verdict = (head + f"PyTorch not run; target <= {model.target_seconds} s (ratio not checked): "
                   f"{'PASS' if ok else 'FAIL'}")
    else:
        ratio, ok = None, None
        verdict = head + f"PyTorch not run; target <= {model.target_ratio}x PyTorch: not checked"
    print(verdict)

    if a.json:
        result = {
            "model": f"{model.name}: {model.description}, softmax cross-entropy",
            "reps": a.reps, "epochs_per_rep": a.epochs_per_rep,
            "python": platform.python_version(), "numpy": np.__version__,
            "nnscratch": nnscratch.__version__, "cpus": os.cpu_count(),
            "blas_threads": threads, "loadavg_start": load_start, "loadavg_end": load_end,
            "torch_threads": torch_threads, "torch_note": torch_note,
            "load_mnist": loads,
            "nnscratch_sec_per_epoch": ours_s, "nnscratch_test_acc": accs,
            "torch_sec_per_epoch": torch_s, "torch_test_acc": torch_accs,
            "seed_sec_per_epoch_extrapolated": seed_s,
            "seed_samples": a.seed_samples if seed_s else None,
            "layer_times": layers,
            "ratio_to_torch": ratio,
            "target": {"seconds": model.target_seconds, "ratio": model.target_ratio}, "pass": ok,
        }
        os.makedirs(os.path.dirname(os.path.abspath(a.json)), exist_ok=True)
        with open(a.json, "w") as f:
            json.dump(result, f, indent=2)
        print(f"results written to {a.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
