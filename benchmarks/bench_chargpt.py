"""Seconds per training step of the character-level GPT, nnscratch beside PyTorch, in one run.

The model is ``model_zoo.build_char_gpt`` (token embedding + learned
positions, ``--layers`` pre-norm causal transformer blocks, layer norm, a
linear head; cross-entropy on the logits over all N x T positions; AdamW
lr 3e-4) on random windows of ``--context + 1`` characters of the KJV
Pentateuch (vocabulary: its sorted characters), and its PyTorch twin
``torch_ref.py chargpt`` (``CharGPT``: ``nn.TransformerEncoderLayer(norm_first=True)``
blocks, the same 828,489 parameters at the default size).

A step is what ``fit`` runs per batch. nnscratch's is timed *inside*
``net.fit`` (progress bar off): a callback stamps the clock at each batch's
end, so a step is the gather of the shuffled batch, ``net.train_step``
(forward in training mode, cost, backward), ``optimizer.step`` and fit's
bookkeeping (the accuracy count), exactly the loop a user runs. One ``fit``
of ``--warmup`` batches comes first, untimed, on the same network and
optimizer. PyTorch's step is ``zero_grad``, forward, ``CrossEntropyLoss``,
``backward``, ``AdamW.step``, after ``--warmup`` untimed steps.

Each repetition runs nnscratch, then PyTorch, each in a fresh process
(interleaved, so both see the same machine load); each process reports the
median of its ``--steps`` timed steps, and the run reports the medians over
``--reps``, their ratio (target <= 1.0), the peak resident memory of every
process (``os.wait4``), the CPU, NumPy's BLAS kernel and PyTorch's threads.
``--layer-times`` adds, from the last repetition's nnscratch process, the
table of ``layer_times.time_layers``: each layer's forward and backward inside
``net.train_step``, and the optimizer step.

The limit, as in bench.py: the machine's float32 GEMM rate (a 1024^3
product, and each product shape of the step) is measured in this process
at the start and at the end, and the higher sets the floor of a step, its
matrix products (``layer_times.step_products`` at T = ``--context``) at
that rate; the run prints each median step over it.

Usage:
    python benchmarks/bench_chargpt.py [--reps 3] [--warmup 5] [--steps 20] [--layer-times]
        [--embed 128] [--heads 4] [--layers 4] [--context 128] [--batch 32] [--dropout 0]
        [--gelu tanh|none] [--torch-mask causal|mask] [--no-torch] [--torch-python PATH]
        [--json PATH]

PyTorch runs only in a subprocess, under the Python of its own virtual
environment (``--torch-python``, else $NNSCRATCH_TORCH_PYTHON, else
~/torchref/bin/python); it is not a dependency of the project.
"""
import argparse
import json
import os
import re
import statistics
import sys
import time

if __package__ in (None, ""):  # run as a script: make the benchmarks package importable
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import numpy as np  # noqa: E402

from benchmarks import REPO, harness, layer_times, machine, report  # noqa: E402  (first: it sets sys.path)
from benchmarks.bench import choose_torch  # noqa: E402
from benchmarks.harness import RESULT_TAG, summary  # noqa: E402
import nnscratch  # noqa: E402  (after benchmarks, which chose the src/ it comes from)
from model_zoo import build_char_gpt  # noqa: E402
from nnscratch.text import Vocabulary  # noqa: E402

KJV = os.path.join(REPO, "datasets", "kjv", "pentateuch.txt")
TARGET_RATIO = 1.0
CONFIG_KEYS = ("embed", "heads", "layers", "context", "batch", "dropout", "gelu", "warmup", "steps")


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--reps", type=int, default=3, help="repetitions, each one nnscratch and one PyTorch "
                                                       "process (default 3)")
    p.add_argument("--warmup", type=int, default=5, help="untimed steps per process first (default 5)")
    p.add_argument("--steps", type=int, default=20, help="timed steps per process (default 20)")
    p.add_argument("--embed", type=int, default=128, help="E, the embedding width (default 128)")
    p.add_argument("--heads", type=int, default=4, help="H, attention heads (default 4)")
    p.add_argument("--layers", type=int, default=4, help="L, transformer blocks (default 4)")
    p.add_argument("--context", type=int, default=128, help="T, characters per window (default 128)")
    p.add_argument("--batch", type=int, default=32, help="windows per step (default 32)")
    p.add_argument("--dropout", type=float, default=0.0, help="dropout p in the blocks (default 0)")
    p.add_argument("--gelu", default="tanh", choices=("tanh", "none"), help="GELU form (default tanh)")
    p.add_argument("--layer-times", action="store_true",
                   help="also time each nnscratch layer's forward and backward, and the optimizer step")
    harness.add_torch_arguments(p)
    p.add_argument("--torch-mask", default="causal", choices=("causal", "mask"),
                   help="PyTorch's attention mask: 'causal' the mask and is_causal=True (default, the "
                        "fastest on CPU), 'mask' the additive mask alone")
    p.add_argument("--timeout", type=float, default=1800,
                   help="seconds allowed to each process (default 1800)")
    p.add_argument("--json", metavar="PATH", help="write the results as JSON")
    p.add_argument("--worker", metavar="CONFIG_JSON", help=argparse.SUPPRESS)  # the nnscratch child process
    a = p.parse_args(argv)
    if min(a.reps, a.steps, a.embed, a.heads, a.layers, a.context, a.batch) < 1 or a.warmup < 0:
        p.error("--reps, --steps and the sizes must be >= 1, --warmup >= 0")
    if a.embed % a.heads:
        p.error(f"--heads {a.heads} must divide --embed {a.embed}")
    return a


def kjv_windows(context, batch, steps, seed):
    """``(vocabulary size, X, Y)``: ``steps * batch`` random windows of ``context + 1`` characters of
    the KJV, X their first ``context`` ids and Y the next ones, int64 (steps * batch, context) each:
    the windows ``torch_ref.kjv_windows`` draws for the same seed."""
    with open(KJV, encoding="utf-8") as f:
        text = f.read()
    vocabulary = Vocabulary(text)
    ids = vocabulary.encode(text)
    starts = np.random.default_rng(seed).integers(0, len(ids) - context, size=(steps, batch))
    windows = ids[starts[..., None] + np.arange(context + 1)].reshape(steps * batch, context + 1)
    return len(vocabulary), windows[:, :-1], windows[:, 1:]


# -- the nnscratch child process ------------------------------------------------------------
class StepClock(nnscratch.Callback):
    """The clock at the epoch's start and after each batch's optimizer step: ``np.diff(stamps)``
    are the steps, as fit runs them."""

    def __init__(self):
        self.stamps = []

    def on_epoch_begin(self, run):
        self.stamps.append(time.perf_counter())

    def on_batch_end(self, run):
        self.stamps.append(time.perf_counter())


def nnscratch_worker(config):
    """Time ``config["steps"]`` batches of ``net.fit`` after a fit of ``config["warmup"]`` batches.

    Returns
    -------
    dict with ``step_seconds`` (each timed step), ``sec_per_step`` (their median),
    ``fit_seconds_per_step`` (fit's ``history["time"]`` over the steps: the mean),
    ``loss`` (the timed fit's mean), ``parameters``, ``loaded_rss_mb`` (after the text),
    ``training_peak_rss_mb`` (the peak from then to the end), and with
    ``layer_times``, ``layer_times``.
    """
    B, warmup, steps = config["batch"], config["warmup"], config["steps"]
    V, X, Y = kjv_windows(config["context"], B, warmup + steps, config["seed"])
    memory = {"loaded_rss_mb": harness.memory_status("VmRSS")}
    harness.reset_peak_rss()
    net = build_char_gpt(V, config["embed"], config["heads"], config["layers"], config["context"],
                         config["dropout"], seed=config["seed"], gelu=config["gelu"])
    optimizer = nnscratch.AdamW(lr=3e-4)

    if warmup:
        net.fit(X[:warmup * B], Y[:warmup * B], epochs=1, batch_size=B, optimizer=optimizer, verbose=0)
    clock = StepClock()
    history = net.fit(X[warmup * B:], Y[warmup * B:], epochs=1, batch_size=B, optimizer=optimizer,
                      callbacks=[clock], verbose=0)
    step_seconds = list(np.diff(clock.stamps))
    result = dict(memory, step_seconds=step_seconds, sec_per_step=statistics.median(step_seconds),
                  fit_seconds_per_step=history["time"][0] / steps, loss=history["loss"][0],
                  parameters=int(sum(p.data.size for p in net.parameters())),
                  training_peak_rss_mb=harness.memory_status("VmHWM"))
    if config["layer_times"]:
        # positions: the FLOPs column counts the step's products at this T (the layers' own flops()
        # count one position when the network's sequence length is free, (None,))
        result["layer_times"] = layer_times.time_layers(net, optimizer, X, Y, B, positions=config["context"])
    return result


# -- the parent: one process per implementation and repetition -----------------------------
def nnscratch_job(config, timeout):
    """``nnscratch_worker(config)`` in a fresh process; its result plus ``peak_rss_mb``."""
    return harness.worker_result([sys.executable, "-m", "benchmarks.bench_chargpt", "--worker", json.dumps(config)],
                                 timeout)


def torch_command(a, config):
    return [a.torch_python, harness.TORCH_REF, "chargpt", "--embed", str(a.embed), "--heads", str(a.heads),
            "--layers", str(a.layers), "--context", str(a.context), "--batch-size", str(a.batch),
            "--dropout", str(a.dropout), "--gelu", a.gelu, "--mask", a.torch_mask,
            "--warmup", str(a.warmup), "--steps", str(a.steps), "--seed", str(config["seed"])]


def torch_job(a, config):
    """``torch_ref.py chargpt`` in a fresh process: its step seconds, median, loss, parameters, threads,
    ``torch_info`` and ``peak_rss_mb``."""
    stdout, rss = harness.run_child(torch_command(a, config), a.timeout)
    result = {"peak_rss_mb": rss, "torch_info": None}
    for line in stdout.splitlines():
        if line.startswith("torch_info "):
            result["torch_info"] = json.loads(line[len("torch_info "):])
        elif line.startswith("chargpt step_seconds "):
            result["step_seconds"] = json.loads(line[len("chargpt step_seconds "):])
        elif line.startswith("chargpt steps "):
            fields = dict(re.findall(r"(\w+) ([0-9.]+)", line))
            result.update(sec_per_step=float(fields["sec_per_step"]), loss=float(fields["loss"]),
                          parameters=int(fields["params"]), threads=int(fields["threads"]))
    if "sec_per_step" not in result:
        raise RuntimeError(f"no sec_per_step in the output of torch_ref.py chargpt:\n{stdout[-500:]}")
    return result


def describe(name, r):
    return (f"{name} {1e3 * r['sec_per_step']:.1f} ms/step (steps {1e3 * min(r['step_seconds']):.1f}-"
            f"{1e3 * max(r['step_seconds']):.1f}), peak RSS {r['peak_rss_mb']:.0f} MB")


def print_layer_times(layer_times, step_seconds):
    """``time_layers``'s table, then the same rows summed over the blocks (``block*.``), with shares."""
    rows, (optimizer, optimizer_s) = [tuple(r) for r in layer_times["rows"]], tuple(layer_times["step"])
    total = sum((f or 0) + (b or 0) for _, f, b, _ in rows) + optimizer_s
    ms = lambda s: "" if s is None else f"{1e3 * s:.2f}"

    def lines(table):
        out = [(name, ms(f), ms(b), f"{100 * ((f or 0) + (b or 0)) / total:.1f}%",
                f"{flops / ((f or 0) + (b or 0)) / 1e9:.1f}" if flops else "") for name, f, b, flops in table]
        return out + [(f"optimizer step ({optimizer}, all parameters)", ms(optimizer_s), "",
                       f"{100 * optimizer_s / total:.1f}%", "")]

    header = ("", "forward ms", "backward ms", "share", "GFLOP/s")
    print(f"Per-layer times on one batch, inside net.train_step in training mode "
          f"(median of {layer_times['repeats']} steps; last repetition's process):")
    report.print_rows(header, lines(rows))
    summed = {}
    for name, f, b, flops in rows:
        key = re.sub(r"^block\d+\.", "block*.", name)
        s = summed.setdefault(key, [0.0, None, 0])
        s[0] += f or 0
        s[1] = None if b is None and s[1] is None else (s[1] or 0) + (b or 0)
        s[2] += flops
    print("\nThe same, summed over the blocks (block*. = every block):")
    report.print_rows(header, lines([(k, f, b, flops) for k, (f, b, flops) in summed.items()]))
    print(f"sum of the rows: {1e3 * total:.2f} ms; the median timed step of fit in the same process: "
          f"{1e3 * step_seconds:.2f} ms (the difference: fit's batch gather, accuracy count and Python)")
    if total > step_seconds:
        print("WARNING: the rows add up to more than the median step: something else slowed these calls down "
              "(see the load average); rerun on a quieter machine")
    print("the cost row holds what no leaf layer accounts for: the cost's log-softmax and gradient, the "
          "residual additions of the blocks, train_step's own Python")
    print("GFLOP/s: the layer's matrix products (forward and backward, at this batch and T; attention counts "
          "every T x T entry, masked or not) over its forward + backward time")


def step_products(a):
    """``layer_times.step_products`` of the network the workers train, built here for the floor."""
    vocabulary_size = kjv_windows(a.context, a.batch, 0, 0)[0]
    net = build_char_gpt(vocabulary_size, a.embed, a.heads, a.layers, a.context, a.dropout, gelu=a.gelu)
    return layer_times.step_products(net, a.batch, a.context)


def main(argv=None):
    a = parse_args(argv)
    config = {k: getattr(a, k) for k in CONFIG_KEYS}
    if a.worker:
        print(RESULT_TAG + json.dumps(nnscratch_worker(json.loads(a.worker))), flush=True)
        return 0
    torch_note = choose_torch(a)
    this = machine.describe()
    products = step_products(a)
    gemm_start = machine.gemm_rate(products["flops"])
    print(f"nnscratch char-GPT training step: E={a.embed}, H={a.heads}, L={a.layers}, T={a.context}, "
          f"batch {a.batch}, dropout {a.dropout}, GELU {a.gelu}; cross-entropy over all positions, AdamW")
    print(f"CPU: {this['cpu']}, {this['cpus']} CPUs visible")
    print(f"python {this['python']}, numpy {this['numpy']}, nnscratch {nnscratch.__version__} "
          f"({harness.git_state(REPO) or 'not a git checkout'})")
    pinned = ", ".join(f"{k}={v}" for k, v in this["thread_variables"].items()) or "threads not pinned"
    print(f"NumPy BLAS (threadpoolctl; {pinned}): {machine.describe_blas(this['blas'])}")
    print(f"the machine's float32 GEMM rate at start: {machine.describe_gemm(gemm_start)}")
    print(f"load average at start (1, 5, 15 min): {machine.loadavg()}")
    print(torch_note or "PyTorch: " + " ".join(os.path.relpath(c, REPO) if c == harness.TORCH_REF else c
                                               for c in torch_command(a, dict(config, seed=0))))
    processes = "a fresh nnscratch process then a fresh PyTorch process" if a.torch_python else \
        "a fresh nnscratch process"
    print(f"{a.reps} repetitions; each {processes}, {a.warmup} untimed + {a.steps} timed steps each\n")

    results = {"nnscratch": [], "pytorch": []}
    for rep in range(a.reps):
        job = dict(config, seed=rep, layer_times=a.layer_times and rep == a.reps - 1)
        parts = []
        try:
            results["nnscratch"].append(nnscratch_job(job, a.timeout))
            parts.append(describe("nnscratch", results["nnscratch"][-1]))
            if a.torch_python:
                results["pytorch"].append(torch_job(a, job))
                parts.append(describe("PyTorch", results["pytorch"][-1]))
        except (RuntimeError, OSError) as e:
            print(f"rep {rep + 1}/{a.reps} failed: {e}")
            return 1
        ours_now, theirs_now = results["nnscratch"][-1], results["pytorch"][-1] if a.torch_python else None
        ratio = f", ratio {ours_now['sec_per_step'] / theirs_now['sec_per_step']:.2f}" if theirs_now else ""
        print(f"rep {rep + 1}/{a.reps}: " + "; ".join(parts) + ratio, flush=True)
    print(f"load average at end (1, 5, 15 min): {machine.loadavg()}")
    gemm_end = machine.gemm_rate(products["flops"])
    print(f"the machine's float32 GEMM rate at end: {machine.describe_gemm(gemm_end)}")
    rates = machine.higher_rates(gemm_start, gemm_end)  # a busy machine only slows products down

    ours = summary([r["sec_per_step"] for r in results["nnscratch"]])
    theirs = summary([r["sec_per_step"] for r in results["pytorch"]])
    mine = results["nnscratch"][-1]
    in_ms = lambda values: ", ".join(f"{1e3 * v:.1f}" for v in values)
    print(f"\nnnscratch: {mine['parameters']:,} parameters; median step {1e3 * ours['median']:.1f} ms "
          f"(reps {in_ms(ours['values'])}); fit's mean step in the same processes "
          f"{in_ms(r['fit_seconds_per_step'] for r in results['nnscratch'])} ms; "
          f"peak RSS {max(r['peak_rss_mb'] for r in results['nnscratch']):.0f} MB "
          f"(while training {max(r['training_peak_rss_mb'] or 0 for r in results['nnscratch']):.0f} MB, "
          f"the text and fit's one-hot targets included)")
    ratio = ok = None
    if theirs:
        info, last = results["pytorch"][-1]["torch_info"], results["pytorch"][-1]
        print(f"PyTorch: {last['parameters']:,} parameters; median step {1e3 * theirs['median']:.1f} ms "
              f"(reps {in_ms(theirs['values'])}); peak RSS "
              f"{max(r['peak_rss_mb'] for r in results['pytorch']):.0f} MB")
        print(report.describe_torch(info, last["threads"]))
        ratio = ours["median"] / theirs["median"]
        ok = ratio <= TARGET_RATIO
    print()
    limits = {name: layer_times.floor(products, 1, rates, s["median"])
              for name, s in (("nnscratch", ours), ("PyTorch", theirs)) if s}
    report.print_limits(list(limits.items()), {"char-GPT": products}, rates, machine.HIGHER_RATES, "step")
    if mine.get("layer_times"):
        print_layer_times(mine["layer_times"], mine["sec_per_step"])
        print()
    fastest = theirs and ours["min"] / theirs["min"]
    if theirs:
        per_rep = ", ".join(f"{o / t:.2f}" for o, t in zip(ours["values"], theirs["values"]))
        print(f"per-repetition ratios {per_rep}; fastest repetition over fastest: {fastest:.2f}")
        print("(when another job slowed some repetitions, the fastest-over-fastest ratio is the nearer to a "
              "quiet machine's; see the load average)")
    print(f"nnscratch char-GPT: {1e3 * ours['median']:.1f} ms/step (median of {ours['n']}), "
          + (f"PyTorch {1e3 * theirs['median']:.1f} ms/step, ratio {ratio:.2f}; target <= {TARGET_RATIO}x "
             f"PyTorch: {'PASS' if ok else 'FAIL'}" if theirs else "PyTorch not run: ratio not checked"))
    if a.json:
        report.write_json(a.json, {"config": config, "reps": a.reps, "machine": this,
                                   "torch_mask": a.torch_mask, "results": results,
                                   "nnscratch_sec_per_step": ours, "torch_sec_per_step": theirs,
                                   "ratio_to_torch": ratio, "ratio_of_fastest": fastest or None,
                                   "gemm": {"start": machine.gemm_json(gemm_start),
                                            "end": machine.gemm_json(gemm_end), "used": machine.HIGHER_RATES},
                                   "floor_per_step": limits,
                                   "target_ratio": TARGET_RATIO, "pass": ok})
    return 0


if __name__ == "__main__":
    sys.exit(main())
