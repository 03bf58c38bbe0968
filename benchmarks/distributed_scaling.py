"""Data-parallel training on this machine, and on paper for a cluster (nnscratch.distributed).

Three parts:

1. Throughput, measured: samples per second of the MLP-800 (batch 128) and
   the reference CNN (batch 64), one process with 2 BLAS threads against
   ``mpiexec -n 2`` with 1 BLAS thread per rank (``OPENBLAS_NUM_THREADS``),
   beside one process with 1 thread, and the 2 ranks' gradients summed in
   2 MiB buckets (the default), in one flat ``Allreduce``, and in 512 KiB
   buckets. Each row is a
   fresh job that trains ``--warmup`` steps untimed, then ``--steps`` timed
   steps of ``train_step`` and ``optimizer.step`` (what ``fit`` calls per
   batch) on synthetic MNIST-shaped data; the rows are interleaved in each of
   ``--reps`` repetitions and the table gives medians. Per step it also gives
   the time inside ``Allreduce`` (which includes waiting for the slower rank)
   and, separately, a bare ``Allreduce`` of the same buffer after a barrier
   (the communication alone).
2. Step time of every shipped network at its batch size (one process, with
   2 BLAS threads and with 1: the faster median is the compute of part 3)
   and its gradient bytes (float32 parameters, counted in
   ``pre-trained/*.safetensors``; model_zoo's network where no file ships).
3. The paper model for P workers on a cluster, ring Allreduce, no overlap of
   communication with compute::

       t_comm(P) = 2 (P - 1) / P x gradient bytes / bandwidth + 2 (P - 1) x latency

   at 10 and 25 Gbit/s, latency ``--latency-us`` (default 10 µs a message:
   MPI over TCP on Ethernet; RDMA is nearer 2 µs), and the efficiency
   compute / (compute + comm) with each worker at the network's batch size
   (weak scaling: a global batch of P x B; at a fixed global batch,
   compute shrinks as 1/P and the efficiency with it).

Usage (from the repository root; needs ``pip install mpi4py mpich``)::

    python benchmarks/distributed_scaling.py [--reps 5] [--steps 40] [--warmup 5] [--json PATH]
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import time

import numpy as np

ROOT = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
sys.path[:0] = [os.path.join(ROOT, "src"), ROOT]

# every shipped network and its batch size (chargpt: 32 windows of 128; charlm: 64 streams of 100)
BATCH = {"mlp50": 32, "clusters": 50, "mlp800": 128, "cnn": 64, "cnn-aug": 64, "lstm": 64, "gru": 64, "rnn": 64,
         "charlm": 64, "chargpt": 32}
SEQUENCE = {"chargpt": 128, "charlm": 100}
MEASURED = ("mlp800", "cnn")
ROWS = [("1 process, 2 threads", 1, "2", None), ("1 process, 1 thread", 1, "1", None),
        ("2 ranks x 1 thread, 2 MiB buckets (default)", 2, "1", 2 ** 21),
        ("2 ranks x 1 thread, one flat Allreduce", 2, "1", 0),
        ("2 ranks x 1 thread, 512 KiB buckets", 2, "1", 2 ** 19)]


def build(model, vocab=None):
    """The shipped network ``model`` (untrained), its batch's input and labels (synthetic), its optimizer."""
    from nnscratch import Adam, AdamW, Network, SGD
    from model_zoo import (build_char_gpt, build_char_lm, build_cnn, build_cnn_aug, build_mlp800,
                           build_sequence_classifier)
    rng = np.random.default_rng(0)
    b = BATCH[model]
    if model == "mlp50":
        net = Network(784, cost="cross_entropy", seed=0)
        for width in (50, 10):
            net.add_fc_layer(width)
            net.add_relu_layer()
        net.add_softmax_layer()
        return net, rng.random((b, 784), dtype=np.float32), rng.integers(0, 10, b), SGD(lr=0.1)
    if model == "clusters":
        net = Network(2, cost="quadratic", seed=0)
        for width in (4, 3):
            net.add_fc_layer(width)
            net.add_sigmoid_layer()
        return net, rng.random((b, 2), dtype=np.float32), rng.integers(0, 3, b), SGD(lr=0.9)
    if model in SEQUENCE:
        net = build_char_gpt(vocab) if model == "chargpt" else build_char_lm(vocab)
        tokens = rng.integers(0, vocab, (b, SEQUENCE[model] + 1))
        return net, tokens[:, :-1], tokens[:, 1:], AdamW(lr=2e-3) if model == "chargpt" else Adam(lr=2e-3)
    net = {"mlp800": build_mlp800, "cnn": build_cnn, "cnn-aug": build_cnn_aug,
           "lstm": lambda: build_sequence_classifier("lstm"), "gru": lambda: build_sequence_classifier("gru"),
           "rnn": lambda: build_sequence_classifier("rnn")}[model]()
    shape = (784,) if model == "mlp800" else (1, 28, 28) if model.startswith("cnn") else (28, 28)
    return net, rng.random((b,) + shape, dtype=np.float32), rng.integers(0, 10, b), Adam(lr=1e-3)


def worker(model, steps, warmup, buckets):
    """One row: time ``steps`` steps after ``warmup`` (under mpiexec: distributed); print JSON on rank 0."""
    from nnscratch.training import prepare_targets
    net, X, y, optimizer = build(model)
    targets, _ = prepare_targets(net, y, len(X))
    params = net.parameters()
    comm = parallel = None
    step = net.train_step
    if "PMI_RANK" in os.environ or "OMPI_COMM_WORLD_RANK" in os.environ:
        from nnscratch.distributed import DistributedSteps, world
        comm = world()
        parallel = DistributedSteps(net, comm, bucket_bytes=buckets or None)
        parallel.broadcast_parameters()
        step = parallel.train_step
    for timed in (False, True):
        if comm:
            comm.Barrier()
            parallel.allreduce_seconds = parallel.gather_seconds = 0.0
        start = time.perf_counter()
        for _ in range(steps if timed else warmup):
            step(X, targets, return_output=True)
            optimizer.step(params)
        seconds = time.perf_counter() - start
    row = {"model": model, "batch": len(X), "steps": steps, "seconds": seconds,
           "samples_per_s": steps * len(X) / seconds, "ms_per_step": 1e3 * seconds / steps}
    if comm:
        row["allreduce_ms"] = 1e3 * parallel.allreduce_seconds / steps
        row["gather_ms"] = 1e3 * parallel.gather_seconds / steps
        row["buckets"] = len(parallel.buckets)
        bare = []
        for _ in range(30):                                   # the communication alone
            comm.Barrier()
            started = time.perf_counter()
            for start, end in parallel.buckets:
                comm.Allreduce(_in_place(), parallel.flat[start:end])
            bare.append(time.perf_counter() - started)
        row["bare_allreduce_ms"] = 1e3 * statistics.median(bare)
        row["gradient_bytes"] = parallel.flat.nbytes
    if comm is None or comm.Get_rank() == 0:
        print("ROW " + json.dumps(row), flush=True)


def _in_place():
    from mpi4py import MPI
    return MPI.IN_PLACE


def shipped_sizes():
    """Parameters (float32 elements) of each shipped network, from its file's tensors."""
    from nnscratch import Network
    from model_zoo import build_cnn_aug
    sizes, vocab = {}, None
    for model in BATCH:
        path = os.path.join(ROOT, "pre-trained", f"{model}.safetensors")
        net = Network.load(path) if os.path.exists(path) else build_cnn_aug()
        sizes[model] = sum(p.data.size for p in net.parameters())
        if model == "chargpt":
            vocab = net.layers[0].W.data.shape[0]
    return sizes, vocab


def step_times(vocab, budget_s=1.5):
    """Median and minimum ms per step (train_step + optimizer.step, this process's BLAS threads) of each
    shipped network: one warm-up step, then steps for ``budget_s`` seconds (at least 3, at most 50)."""
    from nnscratch.training import prepare_targets
    times = {}
    for model in BATCH:
        net, X, y, optimizer = build(model, vocab)
        targets, _ = prepare_targets(net, y, len(X))
        params, samples = net.parameters(), []
        for i in range(51):
            start = time.perf_counter()
            net.train_step(X, targets)
            optimizer.step(params)
            if i:                                             # the first is a warm-up
                samples.append(time.perf_counter() - start)
            if len(samples) >= 3 and sum(samples) > budget_s:
                break
        times[model] = (1e3 * statistics.median(samples), 1e3 * min(samples), len(samples))
    return times


def paper_model(sizes, times, latency_us, workers=(2, 4, 8, 16, 32, 64), gbits=(10, 25)):
    """Rows (model, gbit, P, comm ms, efficiency) of the ring-Allreduce model (module docstring)."""
    rows = []
    for model, elements in sizes.items():
        nbytes = 4 * elements
        for g in gbits:
            for p in workers:
                comm_s = 2 * (p - 1) / p * nbytes / (g * 1e9 / 8) + 2 * (p - 1) * latency_us * 1e-6
                compute_s = min(times[model][0][0], times[model][1][0]) / 1e3
                rows.append((model, g, p, 1e3 * comm_s, compute_s / (compute_s + comm_s)))
    return rows


def run_row(model, ranks, threads, buckets, steps, warmup):
    env = dict(os.environ, OPENBLAS_NUM_THREADS=threads, OMP_NUM_THREADS=threads, MKL_NUM_THREADS=threads)
    command = [sys.executable, os.path.abspath(__file__), "--worker", model, "--steps", str(steps),
               "--warmup", str(warmup)] + (["--buckets", str(buckets)] if buckets is not None else [])
    if ranks > 1:
        mpiexec = os.path.join(os.path.dirname(sys.executable), "mpiexec")
        command = [mpiexec if os.path.exists(mpiexec) else "mpiexec", "-n", str(ranks)] + command
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)
    lines = [line for line in done.stdout.splitlines() if line.startswith("ROW ")]
    if done.returncode or not lines:
        raise RuntimeError(f"{' '.join(command)} failed: {done.stderr[-2000:]}")
    return json.loads(lines[-1][4:])


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--latency-us", type=float, default=10.0)
    parser.add_argument("--json", help="also write every measurement to this file")
    parser.add_argument("--paper-only", action="store_true",
                        help="skip the measured 1-process / 2-rank runs: only the step times and the paper model")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--buckets", type=int, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        return worker(args.worker, args.steps, args.warmup, args.buckets)

    from benchmarks.machine import blas_info, cpu_model, describe_blas
    print(f"CPU: {cpu_model()}, {os.cpu_count()} cores; BLAS: {describe_blas(blas_info())}")
    print(f"load average at the start: {os.getloadavg()}")
    measured = {(model, label): [] for model in MEASURED for label, *_ in ROWS}
    for rep in range(0 if args.paper_only else args.reps):
        for model in MEASURED:
            for label, ranks, threads, buckets in ROWS:
                row = run_row(model, ranks, threads, buckets, args.steps, args.warmup)
                measured[model, label].append(row)
                comm = (f"  Allreduce {row['allreduce_ms']:.2f} ms/step (bare {row['bare_allreduce_ms']:.2f})"
                        if "allreduce_ms" in row else "")
                print(f"rep {rep + 1} {model:7s} {label:44s} {row['samples_per_s']:8.0f} samples/s{comm}",
                      flush=True)
    print(f"load average after the measured runs: {os.getloadavg()}\n")

    def median(rows, key):
        return statistics.median(r[key] for r in rows)

    print("| model (batch) | run | samples/s, median (min-max) | ms/step | vs 1 process | Allreduce ms/step "
          "(in the step / bare) | Allgatherv ms/step |")
    print("|---|---|---|---|---|---|---|")
    for model in () if args.paper_only else MEASURED:
        base = median(measured[model, ROWS[0][0]], "samples_per_s")
        for label, *_ in ROWS:
            rows = measured[model, label]
            rate = [r["samples_per_s"] for r in rows]
            comm = (f"{median(rows, 'allreduce_ms'):.2f} / {median(rows, 'bare_allreduce_ms'):.2f} "
                    f"({rows[0]['buckets']} call{'s' * (rows[0]['buckets'] > 1)}, "
                    f"{rows[0]['gradient_bytes'] / 1e6:.2f} MB)" if "allreduce_ms" in rows[0] else "")
            gather = f"{median(rows, 'gather_ms'):.3f}" if "gather_ms" in rows[0] else ""
            print(f"| {model} ({BATCH[model]}) | {label} | {statistics.median(rate):.0f} ({min(rate):.0f}-"
                  f"{max(rate):.0f}) | {median(rows, 'ms_per_step'):.2f} | "
                  f"{statistics.median(rate) / base:.2f} | {comm} | {gather} |")

    sizes, vocab = shipped_sizes()
    from threadpoolctl import threadpool_limits
    by_threads = []
    for threads in (2, 1):
        with threadpool_limits(limits=threads, user_api="blas"):
            by_threads.append(step_times(vocab))
    times = {model: (by_threads[0][model], by_threads[1][model]) for model in BATCH}
    print(f"\nload average after the step times: {os.getloadavg()}\n")
    print("| network (batch) | parameters | gradient MB (float32) "
          "| ms per step, 2 threads: median (min; steps) | 1 thread |")
    print("|---|---|---|---|---|")
    for model in BATCH:
        batch = f"{BATCH[model]} x {SEQUENCE[model]}" if model in SEQUENCE else BATCH[model]
        cells = [f"{ms:.2f} ({fastest:.2f}; {count})" for ms, fastest, count in times[model]]
        print(f"| {model} ({batch}) | {sizes[model]:,} | {4 * sizes[model] / 1e6:.2f} | "
              + " | ".join(cells) + " |")
    rows = paper_model(sizes, times, args.latency_us)
    workers = sorted({p for _, _, p, _, _ in rows})
    print(f"\nProjected efficiency, compute / (compute + comm), each worker at the batch above "
          f"(latency {args.latency_us:g} µs a message):\n")
    print("| network | Gbit/s | " + " | ".join(f"P={p}" for p in workers) + " |")
    print("|---|---|" + "---|" * len(workers))
    for model in BATCH:
        for g in (10, 25):
            cells = [f"{eff:.2f} ({comm:.1f} ms)" for m, gb, _, comm, eff in rows if m == model and gb == g]
            print(f"| {model} | {g} | " + " | ".join(cells) + " |")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"measured": {f"{m}|{label}": v for (m, label), v in measured.items()},
                       "sizes": sizes, "step_ms": times, "paper": rows}, f, indent=1)


if __name__ == "__main__":
    sys.exit(main())
