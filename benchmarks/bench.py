"""Seconds per training epoch and peak memory of nnscratch networks on MNIST, beside PyTorch.

Models (``--model``), trained on the 60,000 MNIST training images with
cross-entropy on a softmax output; details and targets in benchmarks/README.md:

- ``mlp50`` (default): 784-50-10 ReLU MLP; batch 32; SGD lr 0.1.
  Target: <= 0.35 s per epoch and <= 0.5x PyTorch.
- ``mlp800``: ``build_mlp800()`` (784-800-800-10, dropout 0.2); batch 128;
  Adam lr 1e-3. Target: <= 1.0x PyTorch.
- ``cnn``: ``build_cnn()`` on (N, 1, 28, 28); batch 64; Adam lr 1e-3. Target:
  <= 1.25x PyTorch. Also ``build_cnn(impl="naive")``, timed on
  ``--naive-batches`` batches and EXTRAPOLATED to an epoch.
- ``lstm``: ``build_sequence_classifier("lstm", 128)`` on (N, 28, 28); batch
  64; Adam lr 1e-3. Target: <= 1.25x PyTorch. ``--also gru,rnn`` adds
  nnscratch-only rows.

The time is the training loop only (``history["time"]`` of ``net.fit``);
``--batches N`` times N batches instead of an epoch and extrapolates. Every
training runs in a fresh process (this script with a hidden ``--worker``
flag, or ``../shared/bench/torch_ref.py MODEL`` under ``--torch-python``),
whose peak resident set size comes from ``os.wait4``. One run makes
``--reps`` repetitions, the rows interleaved in each, and reports medians.

Usage:
    python benchmarks/bench.py [--model mlp50|mlp800|cnn|lstm] [--reps R] [--epochs-per-rep 1]
                               [--batches N] [--naive-batches 3] [--also gru,rnn]
                               [--layer-times] [--no-torch] [--torch-python PATH]
                               [--torch-test-images K] [--seed-baseline] [--json results.json]

PyTorch is only ever run in a subprocess from its own virtual environment; it
is not a dependency of the project.
"""
import argparse
import gzip
import json
import os
import platform
import re
import shutil
import statistics
import struct
import subprocess
import sys
import tempfile
import threading
import time
from collections import namedtuple

import numpy as np

REPO = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
sys.path.insert(0, os.path.join(REPO, "src"))

import nnscratch
from model_zoo import build_cnn, build_mlp800, build_sequence_classifier
from nnscratch.data import MNIST_DIR, verify_checksums

TORCH_REF = os.path.normpath(os.path.join(REPO, "..", "shared", "bench", "torch_ref.py"))
DEFAULT_TORCH_PYTHON = os.path.expanduser("~/torchref/bin/python")
N_TRAIN = 60000
WARM_UP_IMAGES = 6400
RESULT_TAG = "BENCH_WORKER_RESULT "


def mlp50(seed):
    net = nnscratch.Network(784, cost="cross_entropy", seed=seed)
    net.add_fc_layer(50)
    net.add_relu_layer()
    net.add_fc_layer(10)
    net.add_softmax_layer()
    return net


# One benchmarked model: how to build it (``build(seed, variant)``; the variant is the CNN's
# impl or the recurrent kind), the per-sample input shape, how to train it, and its target
# (target_seconds None: no absolute target, only the ratio to PyTorch).
Model = namedtuple("Model", "name description build input_shape batch optimizer reps "
                             "target_seconds target_ratio")
MODELS = {
    "mlp50": Model("mlp50", "784-50-10 ReLU MLP, batch 32, SGD lr 0.1",
                   lambda seed, variant=None: mlp50(seed), (784,), 32,
                   lambda: nnscratch.SGD(lr=0.1), 5, 0.35, 0.5),
    "mlp800": Model("mlp800", "784-800-800-10 ReLU MLP, dropout 0.2, batch 128, Adam lr 1e-3",
                    lambda seed, variant=None: build_mlp800(seed=seed), (784,), 128,
                    lambda: nnscratch.Adam(lr=1e-3), 3, None, 1.0),
    "cnn": Model("cnn", "conv 32 3x3, max-pool 2, conv 64 3x3, max-pool 2, FC 128, dropout 0.5, FC 10 "
                        "(ReLUs), batch 64, Adam lr 1e-3",
                 lambda seed, variant=None: build_cnn(seed=seed, impl=variant or "fast"), (1, 28, 28), 64,
                 lambda: nnscratch.Adam(lr=1e-3), 3, None, 1.25),
    "lstm": Model("lstm", "LSTM 128 over the 28 rows of 28 pixels, last state, FC 10, batch 64, Adam lr 1e-3",
                  lambda seed, variant=None: build_sequence_classifier(variant or "lstm", 128, seed=seed),
                  (28, 28), 64, lambda: nnscratch.Adam(lr=1e-3), 3, None, 1.25),
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
    """``{"median", "min", "max", "n", "values"}`` for a list of numbers (None if empty)."""
    if not values:
        return None
    return {"median": statistics.median(values), "min": min(values), "max": max(values),
            "n": len(values), "values": list(values)}


def maxrss_mb(ru_maxrss):
    """``ru_maxrss`` in MB (2**20 bytes): kilobytes on Linux, bytes on macOS."""
    return ru_maxrss / (2 ** 20 if sys.platform == "darwin" else 2 ** 10)


def memory_status(field):
    """``VmRSS`` (resident now) or ``VmHWM`` (peak) of this process in MB, from /proc/self/status
    (Linux only; None elsewhere)."""
    try:
        with open("/proc/self/status") as f:
            return int(re.search(field + r":\s+(\d+)", f.read()).group(1)) / 2 ** 10
    except (OSError, AttributeError):
        return None


def reset_peak_rss():
    """Reset VmHWM to the current RSS (Linux >= 4.0), so that it then holds the training's peak."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    except OSError:
        pass


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


# -- the worker: one nnscratch training in its own process ------------------------------
def worker(spec):
    """Run one job described by ``spec`` (a dict from ``nnscratch_job``); returns a JSON-able dict.

    ``kind == "fit"``: load MNIST, warm up on ``warmup`` images (untimed, a separate network),
    train a fresh network (seed ``seed``) on the first ``images`` training images for
    ``epochs`` epochs, extrapolate each epoch's time to 60,000 images, then optionally
    evaluate (in batches of the training batch size, so evaluation needs no more memory than
    a training batch) and time each layer. ``kind == "seed"``: the seed's per-sample loop.
    """
    model = MODELS[spec["model"]]
    X, y, X_test, y_test = nnscratch.load_mnist()
    X, X_test = X.reshape((-1,) + model.input_shape), X_test.reshape((-1,) + model.input_shape)
    memory = {"loaded_rss_mb": memory_status("VmRSS")}  # Python, NumPy and MNIST, after the parse
    reset_peak_rss()
    if spec["kind"] == "seed":
        extrapolated, measured = seed_baseline(X, y, spec["samples"], np.random.default_rng(spec["seed"]),
                                               np.dtype(spec["dtype"]))
        return dict(memory, sec_per_epoch=[extrapolated], measured=[measured], test_acc=None,
                    training_peak_rss_mb=memory_status("VmHWM"))
    warmup = spec["warmup"]
    if warmup:
        model.build(12345, spec["variant"]).fit(X[:warmup], y[:warmup], epochs=1, batch_size=model.batch,
                                                 optimizer=model.optimizer(), verbose=0)
    n = spec["images"]
    net = model.build(spec["seed"], spec["variant"])
    history = net.fit(X[:n], y[:n], epochs=spec["epochs"], batch_size=model.batch,
                      optimizer=model.optimizer(), verbose=0)
    result = dict(memory, training_peak_rss_mb=memory_status("VmHWM"), measured=list(history["time"]),
                  sec_per_epoch=[t * N_TRAIN / n for t in history["time"]])
    result["test_acc"] = (net.evaluate(X_test, y_test, batch_size=model.batch)["accuracy"]
                          if spec["evaluate"] else None)
    if spec["layer_times"]:
        rows, step = layer_times(net, X[:n], y[:n], model.batch)
        result["layer_times"] = {"rows": rows, "step": step}
    return result


def layer_times(net, X, y, batch, repeats=20):
    """Median seconds of each layer's forward and backward (training mode) on one batch, and of
    the optimizer step: ``[(name, forward, backward, fwd+bwd FLOPs), ...]`` and the step's
    ``(optimizer name, seconds)``. Works for any network trained by ``fit``.

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
        forward[layer.name], out = median_time(lambda layer=layer, out=out: layer.forward(out, True))
    cost = net.cost
    gradient = cost.fused_gradient if net.fused_output else cost.gradient
    cost_time, grad = median_time(lambda: (cost.value(out, targets), gradient(out, targets))[1])
    backward = {}
    for layer in (net.layers[-2::-1] if net.fused_output else net.layers[::-1]):
        backward[layer.name], grad = median_time(lambda layer=layer, grad=grad: layer.backward(grad))
    optimizer, params = net.optimizer, net.parameters()
    step_time, _ = median_time(lambda: optimizer.step(params))
    rows = []
    for layer in net.layers:
        # Layers with weights: one product forward, one for the weight gradient, one for the input's.
        products = 1 + (2 if layer.needs_input_grad else 1) if layer.parameters() else 0
        rows.append((f"{layer.name} ({type(layer).__name__})", forward[layer.name],
                     backward.get(layer.name), products * layer.flops() * batch))
    rows.append((f"cost ({cost.name}{', fused gradient' if net.fused_output else ''})", cost_time, None, 0))
    return rows, (type(optimizer).__name__, step_time)


# -- the seed's per-sample loop (mlp50 only) ------------------------------------------
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


# -- child processes -----------------------------------------------------------------
def run_child(cmd, timeout):
    """Run ``cmd``; returns (stdout, peak RSS of that process in MB). Raises RuntimeError when it
    fails or runs past ``timeout`` seconds. The peak comes from ``os.wait4``, which reports the
    rusage of that one child (RUSAGE_CHILDREN would give the largest of all children so far)."""
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        proc = subprocess.Popen(cmd, stdout=out, stderr=err, text=True, cwd=REPO)
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


def nnscratch_job(spec, timeout):
    """Run ``worker(spec)`` in a fresh process of this script; its result plus ``peak_rss_mb``."""
    cmd = [sys.executable, os.path.abspath(__file__), "--worker", json.dumps(spec)]
    stdout, rss = run_child(cmd, timeout)
    lines = [line for line in stdout.splitlines() if line.startswith(RESULT_TAG)]
    if not lines:
        raise RuntimeError(f"the worker printed no result:\n{stdout[-500:]}")
    return dict(json.loads(lines[-1][len(RESULT_TAG):]), peak_rss_mb=rss)


def torch_job(python, model_name, epochs, batches, data_dir, timeout):
    """Run torch_ref.py MODEL once; its sec_per_epoch list, test_acc, threads and ``peak_rss_mb``."""
    cmd = [python, TORCH_REF, model_name, "--epochs", str(epochs), "--data", data_dir]
    if batches:
        cmd += ["--batches", str(batches)]
    stdout, rss = run_child(cmd, timeout)
    result = {"sec_per_epoch": [], "test_acc": None, "threads": None, "peak_rss_mb": rss}
    for line in stdout.splitlines():
        m = re.search(r"sec_per_epoch\s+([0-9.]+)", line)
        if m:
            result["sec_per_epoch"].append(float(m.group(1)))
            a, th = re.search(r"test_acc\s+([0-9.]+)", line), re.search(r"threads\s+(\d+)", line)
            result["test_acc"] = float(a.group(1)) if a else result["test_acc"]
            result["threads"] = int(th.group(1)) if th else result["threads"]
    if not result["sec_per_epoch"]:
        raise RuntimeError(f"no sec_per_epoch in the output of {' '.join(cmd)}:\n{stdout[-500:]}")
    return result


def torch_data_dir(folder, test_images):
    """Fill ``folder`` with MNIST for torch_ref.py: the training files linked, the test files cut
    to their first ``test_images`` records (torch_ref.py evaluates the whole test set in one
    forward pass, which for the CNN would set the process's peak memory, not the training)."""
    for name in ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"):
        try:
            os.symlink(os.path.join(MNIST_DIR, name), os.path.join(folder, name))
        except OSError:
            shutil.copy(os.path.join(MNIST_DIR, name), os.path.join(folder, name))
    for name in ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"):
        with gzip.open(os.path.join(MNIST_DIR, name), "rb") as f:
            raw = f.read()
        ndim = raw[3]
        dims = struct.unpack(">" + "I" * ndim, raw[4:4 + 4 * ndim])
        record = int(np.prod(dims[1:], dtype=np.int64))
        head = 4 + 4 * ndim
        with gzip.open(os.path.join(folder, name), "wb", compresslevel=1) as f:
            f.write(raw[:4] + struct.pack(">I", test_images) + raw[8:head]
                    + raw[head:head + test_images * record])
    return folder


# -- report -----------------------------------------------------------------------
def plural(n, word):
    return f"{n} {word}" + ("" if n == 1 else "es" if word.endswith("h") else "s")


def fmt(x, digits=3):
    return "n/a" if x is None else f"{x:.{digits}f}"


def collect(row, key):
    """One field of a row's results over the repetitions: the epochs' seconds flattened, else a list."""
    if key in ("sec_per_epoch", "measured"):
        return [v for r in row["results"] for v in r.get(key, [])]
    return [r.get(key) for r in row["results"]]


def print_rows(header, lines):
    """A text table: the first column left-aligned, the others right-aligned."""
    widths = [max(len(r[i]) for r in [header] + lines) for i in range(len(header))]
    out = lambda r: "  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths)))
    rule = "-" * (sum(widths) + 2 * (len(widths) - 1))
    print("\n".join([out(header), rule] + [out(r) for r in lines] + [rule]))


def print_table(rows, torch_median):
    """Per row: s/epoch median, min, max, n; the highest peak RSS of its processes, and (nnscratch
    only) the highest peak while training; the ratio of its median to PyTorch's."""
    lines = []
    for row in rows:
        s = summary(collect(row, "sec_per_epoch"))
        training = [v for v in collect(row, "training_peak_rss_mb") if v is not None]
        ratio = fmt(s["median"] / torch_median, 2) if torch_median and row["compare"] else "-"
        lines.append((row["label"], fmt(s["median"]), fmt(s["min"]), fmt(s["max"]), str(s["n"]),
                      f"{max(collect(row, 'peak_rss_mb')):.0f}", f"{max(training):.0f}" if training else "-",
                      ratio))
    print_rows(("implementation", "median s/epoch", "min", "max", "n", "peak RSS MB", "while training",
                "ratio to PyTorch"), lines)


def print_layer_times(rows, step, batch, epoch_seconds, repeats=20):
    ms = lambda s: "" if s is None else f"{1e3 * s:.3f}"
    total = sum(f + (b or 0) for _, f, b, _ in rows) + step[1]
    lines = [(name, ms(f), ms(b), f"{100 * (f + (b or 0)) / total:.1f}%",
              f"{flops / (f + (b or 0)) / 1e9:.1f}" if flops else "") for name, f, b, flops in rows]
    lines.append((f"optimizer step ({step[0]}, all parameters)", ms(step[1]), "",
                  f"{100 * step[1] / total:.1f}%", ""))
    print(f"Per-layer times on one batch of {batch} in training mode (median of {repeats} calls each):")
    print_rows(("", "forward ms", "backward ms", "share", "GFLOP/s"), lines)
    per_batch = epoch_seconds * batch / N_TRAIN
    print(f"sum of the rows: {1e3 * total:.3f} ms per batch; the median epoch: {1e3 * per_batch:.3f} ms "
          f"per batch (s/epoch x {batch} / 60,000);\nthe difference, {1e3 * (per_batch - total):.3f} ms "
          f"({100 * (per_batch - total) / per_batch:.0f}%), is the rest of fit's loop "
          f"(batch gather, accuracy, Python)")
    if total > per_batch:
        print("WARNING: the rows add up to more than a whole batch of the epoch: something else slowed these "
              "calls down (see the load average); rerun on a quieter machine")
    print("GFLOP/s: the layer's matrix products (or convolutions), forward and backward, over its "
          "forward + backward time")


def verdict(model, median, n, torch_median, extrapolated):
    """The final line and (ratio, pass: True, False or None when not checked)."""
    head = f"nnscratch {model.name}: {median:.3f} s/epoch{extrapolated} (median of {n}), "
    seconds = f"<= {model.target_seconds} s and " if model.target_seconds else ""
    ok_time = model.target_seconds is None or median <= model.target_seconds
    if torch_median:
        ratio = median / torch_median
        ok = ok_time and ratio <= model.target_ratio
        return (head + f"PyTorch {torch_median:.2f} s/epoch, ratio {ratio:.2f}; target {seconds}"
                f"<= {model.target_ratio}x PyTorch: {'PASS' if ok else 'FAIL'}"), ratio, ok
    if model.target_seconds:
        return (head + f"PyTorch not run; target <= {model.target_seconds} s (ratio not checked): "
                f"{'PASS' if ok_time else 'FAIL'}"), None, ok_time
    return head + f"PyTorch not run; target <= {model.target_ratio}x PyTorch: not checked", None, None


# -- main ---------------------------------------------------------------------------
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
    p.add_argument("--no-torch", action="store_true", help="skip the PyTorch reference")
    p.add_argument("--torch-python", default=None,
                   help=f"python with torch installed (default {DEFAULT_TORCH_PYTHON} if it exists)")
    p.add_argument("--torch-test-images", type=int, default=None,
                   help="test images torch_ref.py evaluates (default: the model's batch size; 10000: all)")
    p.add_argument("--seed-baseline", action="store_true",
                   help="mlp50 only: also time the seed's per-sample loop (extrapolated from --seed-samples)")
    p.add_argument("--seed-samples", type=int, default=3000,
                   help="samples per seed-baseline timing (default 3000)")
    p.add_argument("--seed-dtype", default="float64", choices=("float64", "float32"),
                   help="dtype of the seed baseline (default float64, as the seed's np.random.randn)")
    p.add_argument("--timeout", type=float, default=3600,
                   help="seconds allowed to each child process (default 3600)")
    p.add_argument("--json", metavar="PATH", help="write the results as JSON")
    p.add_argument("--worker", help=argparse.SUPPRESS)
    a = p.parse_args(argv)
    if a.worker:
        return a
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
    if a.also and (model.name != "lstm" or not set(a.also) <= {"gru", "rnn"}):
        p.error("--also takes gru and/or rnn, with --model lstm")
    a.torch_test_images = min(a.torch_test_images or model.batch, 10000)
    a.seed_samples = min(a.seed_samples, N_TRAIN)
    return a


def choose_torch(a):
    """Sets ``a.torch_python`` (None when PyTorch is not run) and returns a note or None."""
    a.torch_python, candidate = None, a.torch_python or DEFAULT_TORCH_PYTHON
    if a.no_torch:
        return "PyTorch reference skipped (--no-torch)"
    if not os.path.exists(candidate):
        return (f"PyTorch reference skipped: {candidate} not found "
                f"(see benchmarks/README.md for the venv setup)")
    if not os.path.exists(TORCH_REF):
        return f"PyTorch reference skipped: {TORCH_REF} not found"
    a.torch_python = candidate
    return None


def plan_rows(a, model):
    """The rows of one repetition, in the order they run: dicts with ``label``, ``name`` (short),
    ``job`` (a worker spec, or "torch"), ``compare`` (whether its ratio to PyTorch means something)
    and ``results`` (one dict per repetition). The first row is the model's nnscratch row."""
    images = a.batches * model.batch or N_TRAIN
    extra = f", EXTRAPOLATED from {plural(a.batches, 'batch')}" if a.batches else ""

    def fit(variant, n_images, warmup, evaluate=True, layers=False):
        return {"kind": "fit", "model": model.name, "variant": variant, "images": n_images,
                "epochs": a.epochs_per_rep, "warmup": warmup, "evaluate": evaluate, "layer_times": layers}

    main_label = {"cnn": 'nnscratch fast (impl="fast")', "lstm": "nnscratch LSTM 128"}.get(
        model.name, "nnscratch (fit, float32, batched)")
    rows = [(main_label + extra, True, fit(None, images, min(WARM_UP_IMAGES, images), layers=a.layer_times))]
    if a.torch_python:
        rows.append((f"PyTorch CPU reference (torch_ref.py {model.name}){extra}", True, "torch"))
    if model.name == "cnn" and a.naive_batches:  # one untimed warm-up batch, then the few timed ones
        rows.append((f'nnscratch naive (impl="naive"), EXTRAPOLATED from {plural(a.naive_batches, "batch")}',
                     True, fit("naive", a.naive_batches * model.batch, model.batch, evaluate=False)))
    for kind in a.also:
        rows.append((f"nnscratch {kind.upper()} 128 (no PyTorch row){extra}", False,
                     fit(kind, images, min(WARM_UP_IMAGES, images))))
    if a.seed_baseline:
        rows.append((f"seed per-sample loop ({a.seed_dtype}), EXTRAPOLATED from {a.seed_samples:,}", True,
                     {"kind": "seed", "model": "mlp50", "samples": a.seed_samples, "dtype": a.seed_dtype}))
    return [{"label": label, "name": label.split(" (")[0].split(",")[0], "compare": compare, "job": job,
             "results": [], "main": i == 0} for i, (label, compare, job) in enumerate(rows)]


def run_rep(rows, rep, a, model, torch_dir):
    """One repetition: every row once, in order, each in a fresh process; prints one line.
    A row whose process fails is dropped (with all its repetitions) and the others go on."""
    parts = []
    for row in rows:
        try:
            if row["job"] == "torch":
                r = torch_job(a.torch_python, model.name, a.epochs_per_rep, a.batches, torch_dir, a.timeout)
            else:
                last = rep == a.reps - 1  # the per-layer table comes from the last repetition's network
                job = dict(row["job"], seed=rep, layer_times=row["job"].get("layer_times") and last)
                r = nnscratch_job(job, a.timeout)
        except (RuntimeError, OSError) as e:
            print(f"{row['name']} failed, dropping its row: {e}")
            row["failed"] = str(e)
            continue
        row["results"].append(r)
        acc = "" if r["test_acc"] is None else f"test acc {r['test_acc']:.4f}, "
        memory = (f"; {r['loaded_rss_mb']:.0f} MB after loading MNIST, {r['training_peak_rss_mb']:.0f} MB "
                  f"while training" if r.get("training_peak_rss_mb") else "")
        parts.append(f"{row['name']} " + " ".join(f"{s:.3f}" for s in r["sec_per_epoch"])
                     + f" s ({acc}peak {r['peak_rss_mb']:.0f} MB{memory})")
    rows[:] = [row for row in rows if "failed" not in row]
    print(f"rep {rep + 1}/{a.reps}: " + "; ".join(parts), flush=True)


def print_header(a, model, rows, torch_note):
    print(f"nnscratch {model.name} benchmark: {model.description}, 60,000 MNIST images")
    print(f"python {platform.python_version()}, numpy {np.__version__}, nnscratch {nnscratch.__version__}, "
          f"{os.cpu_count()} CPUs visible, {platform.machine()}")
    print(f"NumPy BLAS threads (not pinned): {blas_threads()}")
    print(f"load average at start (1, 5, 15 min): {loadavg()}")
    batches = f" --batches {a.batches}" if a.batches else ""
    print(torch_note or (f"PyTorch reference: {a.torch_python} {os.path.relpath(TORCH_REF, REPO)} "
                         f"{model.name}{batches} (a fresh process per repetition; its s/epoch excludes "
                         f"start-up; it evaluates the first {a.torch_test_images:,} test images)"))
    timed = (f"{plural(a.batches, 'batch')} of {model.batch} per epoch, EXTRAPOLATED to 60,000 images"
             if a.batches else "whole epochs")
    print(f"{a.reps} repetitions x {a.epochs_per_rep} epoch(s), {timed}; each row a fresh process"
          + (f", interleaved: {' / '.join(r['name'] for r in rows)} in each" if len(rows) > 1 else "") + "\n")


def print_notes(a, model, rows, torch_row):
    notes = [("peak RSS: the highest over the repetitions of each process's peak resident set size "
              "(os.wait4), the whole process: Python, NumPy or PyTorch, the MNIST arrays and their parse"),
             ("while training: nnscratch only, the peak from after loading MNIST to the end of fit "
              "(/proc/self/status VmHWM, reset after the load), the loaded arrays included")]
    if torch_row and a.torch_test_images < 10000:
        notes.append(f"PyTorch evaluates only the first {a.torch_test_images:,} test images, so that its "
                     f"peak is the training's (--torch-test-images 10000 for all); nnscratch evaluates all "
                     f"10,000 in batches of {model.batch}")
    if any("EXTRAPOLATED" in r["label"] for r in rows):
        notes.append("EXTRAPOLATED rows time a few batches and multiply by 60,000 / the images timed; "
                     "estimates, not whole epochs")
    print("\n".join(f"({n})" for n in notes) + "\n")


def main(argv=None):
    a = parse_args(argv)
    if a.worker:
        print(RESULT_TAG + json.dumps(worker(json.loads(a.worker))), flush=True)
        return 0
    model = MODELS[a.model]
    torch_note = choose_torch(a)
    rows = plan_rows(a, model)
    print_header(a, model, rows, torch_note)
    load_start = loadavg()
    loads = time_loads()
    load = loads["load"]
    print(f"MNIST load_mnist() from {os.path.relpath(MNIST_DIR, REPO)}, median of {load['n']}: "
          f"{load['median']:.2f} s (min {load['min']:.2f}, max {load['max']:.2f}); "
          f"SHA-256 checks alone {loads['checksums']:.2f} s\n")

    with tempfile.TemporaryDirectory(prefix="bench-mnist-") as tmp:
        torch_dir = MNIST_DIR if a.torch_test_images >= 10000 else torch_data_dir(tmp, a.torch_test_images)
        for rep in range(a.reps):
            run_rep(rows, rep, a, model, torch_dir)
    load_end = loadavg()
    print(f"load average at end (1, 5, 15 min): {load_end}")
    torch_row = next((r for r in rows if r["job"] == "torch"), None)
    torch_threads = collect(torch_row, "threads")[-1] if torch_row else None
    if torch_threads is not None:
        print(f"PyTorch threads (torch.get_num_threads(), not pinned): {torch_threads}")
    print()
    if not rows or not rows[0]["main"]:
        print("the nnscratch run failed; nothing to report")
        return 1

    torch_median = statistics.median(collect(torch_row, "sec_per_epoch")) if torch_row else None
    print_table(rows, torch_median)
    print_notes(a, model, rows, torch_row)
    main_row, ours = rows[0], summary(collect(rows[0], "sec_per_epoch"))
    layers = main_row["results"][-1].get("layer_times")
    if layers:
        print_layer_times([tuple(r) for r in layers["rows"]], tuple(layers["step"]), model.batch,
                          ours["median"])
        print()
    line, ratio, ok = verdict(model, ours["median"], ours["n"], torch_median,
                              f" (EXTRAPOLATED from {plural(a.batches, 'batch')})" if a.batches else "")
    print(line)

    if a.json:
        result = {
            "model": f"{model.name}: {model.description}, softmax cross-entropy",
            "reps": a.reps, "epochs_per_rep": a.epochs_per_rep, "batches": a.batches or None,
            "python": platform.python_version(), "numpy": np.__version__,
            "nnscratch": nnscratch.__version__, "cpus": os.cpu_count(),
            "blas_threads": blas_threads(), "loadavg_start": load_start, "loadavg_end": load_end,
            "torch_threads": torch_threads, "torch_note": torch_note,
            "torch_test_images": a.torch_test_images if torch_row else None, "load_mnist": loads,
            "rows": [{"label": r["label"], "sec_per_epoch": summary(collect(r, "sec_per_epoch")),
                      **{key: collect(r, key) for key in ("measured", "test_acc", "peak_rss_mb",
                                                          "loaded_rss_mb", "training_peak_rss_mb")}}
                     for r in rows],
            "nnscratch_sec_per_epoch": ours,
            "torch_sec_per_epoch": summary(collect(torch_row, "sec_per_epoch")) if torch_row else None,
            "layer_times": layers, "ratio_to_torch": ratio,
            "target": {"seconds": model.target_seconds, "ratio": model.target_ratio}, "pass": ok,
        }
        os.makedirs(os.path.dirname(os.path.abspath(a.json)), exist_ok=True)
        with open(a.json, "w") as f:
            json.dump(result, f, indent=2)
        print(f"results written to {a.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
