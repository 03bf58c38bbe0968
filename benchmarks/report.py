"""What a benchmark run prints: the header, one line per repetition, the table, the limit, the verdict,
the JSON.

Every number printed is a median over the repetitions of one run, with the
machine it ran on named in the header (``machine.describe()``): ratios to
PyTorch differ between CPU kinds and BLAS kernels. The limit puts each row
beside its floor, its matrix products at the machine's float32 GEMM rate
(``layer_times.floor``), which no implementation on this CPU can beat.
"""
import json
import os
import statistics

from benchmarks import REPO
from benchmarks.harness import TORCH_REF, plural, summary
from benchmarks.machine import describe_blas, describe_gemm, loadavg
from benchmarks.models import N_TRAIN


def fmt(x, digits=3):
    return "n/a" if x is None else f"{x:.{digits}f}"


def print_rows(header, lines):
    """A text table: the first column left-aligned, the others right-aligned."""
    widths = [max(len(r[i]) for r in [header] + lines) for i in range(len(header))]
    out = lambda r: "  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths)))
    rule = "-" * (sum(widths) + 2 * (len(widths) - 1))
    print("\n".join([out(header), rule] + [out(r) for r in lines] + [rule]))


def print_header(options, model, rows, torch_note, machine, nnscratch_version, checkouts, gemm):
    """What runs, on what: the model, the CPU, NumPy and its BLAS, its GEMM rate, the load, PyTorch's
    command, the plan.

    ``checkouts``: ``{"this": git state, "baseline": git state or None}`` (``harness.git_state``);
    ``gemm``: ``machine.gemm_rate``'s measurement at the start.
    """
    print(f"nnscratch {model.name} benchmark: {model.description}, 60,000 MNIST images")
    print(f"CPU: {machine['cpu']}, {machine['cpus']} CPUs visible, {machine['machine']}")
    print(f"python {machine['python']}, numpy {machine['numpy']}, nnscratch {nnscratch_version} "
          f"({checkouts['this'] or 'not a git checkout'})")
    pinned = ", ".join(f"{k}={v}" for k, v in machine["thread_variables"].items()) or "threads not pinned"
    print(f"NumPy BLAS (threadpoolctl; {pinned}): {describe_blas(machine['blas'])}")
    print(f"the machine's float32 GEMM rate at start: {describe_gemm(gemm)}")
    if options.baseline:
        print(f"baseline: the nnscratch of {os.path.join(options.baseline, 'src')} "
              f"({checkouts['baseline'] or 'not a git checkout'}), run by this checkout's benchmark "
              f"code in the rows named 'baseline ...'")
    print(f"load average at start (1, 5, 15 min): {loadavg()}")
    batches = f" --batches {options.batches}" if options.batches else ""
    print(torch_note or (f"PyTorch reference: {options.torch_python} {os.path.relpath(TORCH_REF, REPO)} "
                         f"{model.torch_name}{batches} (a fresh process per repetition; its s/epoch excludes "
                         f"start-up; it evaluates the first {options.torch_test_images:,} test images)"))
    timed = (f"{plural(options.batches, 'batch')} of {model.batch} per epoch, EXTRAPOLATED to 60,000 images"
             if options.batches else "whole epochs")
    print(f"{options.reps} repetitions x {options.epochs_per_rep} epoch(s), {timed}; each row a fresh process"
          + (f", interleaved: {' / '.join(r.name for r in rows)} in each" if len(rows) > 1 else "") + "\n")


def print_loads(loads, mnist_dir):
    """The MNIST load time (``harness.time_loads``)."""
    load = loads["load"]
    print(f"MNIST load_mnist() from {os.path.relpath(mnist_dir, REPO)}, median of {load['n']}: "
          f"{load['median']:.2f} s (min {load['min']:.2f}, max {load['max']:.2f}); "
          f"SHA-256 checks alone {loads['checksums']:.2f} s\n")


def print_rep(rep, reps, outcomes):
    """One line for a repetition (``harness.run_rep``'s outcomes): each row's seconds, accuracy, memory."""
    parts = []
    for row, r, error in outcomes:
        if error:
            print(f"{row.name} failed, dropping its row: {error}")
            continue
        acc = "" if r["test_acc"] is None else f"test acc {r['test_acc']:.4f}, "
        memory = (f"; {r['loaded_rss_mb']:.0f} MB after loading MNIST, {r['training_peak_rss_mb']:.0f} MB "
                  f"while training" if r.get("training_peak_rss_mb") else "")
        parts.append(f"{row.name} " + " ".join(f"{s:.3f}" for s in r["sec_per_epoch"])
                     + f" s ({acc}peak {r['peak_rss_mb']:.0f} MB{memory})")
    print(f"rep {rep + 1}/{reps}: " + "; ".join(parts), flush=True)


def describe_torch(info, threads):
    """torch_ref.py's ``torch_info`` as one line (its version, CPU kernels, threads)."""
    if not info:
        return f"PyTorch threads (torch.get_num_threads(), not pinned): {threads}"
    kernels = [f"CPU capability {info.get('cpu_capability') or '?'}",
               f"oneDNN (mkldnn) {info.get('onednn_version') or ''}".rstrip()
               + ("" if info.get("mkldnn_available") else " not available"),
               f"MKL {info.get('mkl_version') or ''}".rstrip() + ("" if info.get("mkl_available") else
                                                                  " not available"),
               f"BLAS {info.get('blas') or '?'}", "OpenMP" if info.get("openmp_available") else "no OpenMP"]
    return (f"PyTorch {info['version']}: {', '.join(kernels)}; {info['threads']} threads, "
            f"{info['interop_threads']} inter-op")


def print_table(rows, torch_median):
    """Per row: s/epoch median, min, max, n; the highest peak RSS of its processes, and (nnscratch
    only) the highest peak while training; the ratio of its median to PyTorch's; with --baseline,
    the ratio of each row's median to its baseline twin's."""
    twins = {id(r.twin): r for r in rows if r.twin is not None}
    header = ["implementation", "median s/epoch", "min", "max", "n", "peak RSS MB", "while training",
              "ratio to PyTorch"] + (["/ baseline"] if twins else [])
    lines = []
    for row in rows:
        s = summary(row.collect("sec_per_epoch"))
        training = [v for v in row.collect("training_peak_rss_mb") if v is not None]
        ratio = fmt(s["median"] / torch_median, 2) if torch_median and row.compare else "-"
        line = [row.label, fmt(s["median"]), fmt(s["min"]), fmt(s["max"]), str(s["n"]),
                f"{max(row.collect('peak_rss_mb')):.0f}", f"{max(training):.0f}" if training else "-", ratio]
        if twins:
            twin = twins.get(id(row))
            line.append(fmt(s["median"] / statistics.median(twin.collect("sec_per_epoch")), 3)
                        if twin else "-")
        lines.append(tuple(line))
    print_rows(tuple(header), lines)


def print_notes(options, model, rows, torch_row):
    """What the columns and the EXTRAPOLATED rows mean."""
    notes = [("peak RSS: the highest over the repetitions of each process's peak resident set size "
              "(os.wait4), the whole process: Python, NumPy or PyTorch, the MNIST arrays and their parse"),
             ("while training: nnscratch only, the peak from after loading MNIST to the end of fit "
              "(/proc/self/status VmHWM, reset after the load), the loaded arrays included")]
    if torch_row and options.torch_test_images < 10000:
        notes.append(f"PyTorch evaluates only the first {options.torch_test_images:,} test images, so that "
                     f"its peak is the training's (--torch-test-images 10000 for all); nnscratch evaluates "
                     f"all 10,000 in batches of {model.batch}")
    if any("EXTRAPOLATED" in r.label for r in rows):
        notes.append("EXTRAPOLATED rows time a few batches and multiply by 60,000 / the images timed; "
                     "estimates, not whole epochs")
    if any(r.twin is not None for r in rows):
        notes.append("/ baseline: the row's median over its baseline twin's, from the same run "
                     "(above 1: this checkout is slower)")
    print("\n".join(f"({n})" for n in notes) + "\n")


def describe_products(products):
    """Which leaf layers a floor counts (``layer_times.step_products``), as one line."""
    kinds = lambda counts: ", ".join(k if n == 1 else f"{k} x{n}" for k, n in counts.items()) or "none"
    return (f"matrix products counted: {kinds(products['counted'])} (forward, weight gradient, input "
            f"gradient but the first layer's); no products, not counted: {kinds(products['skipped'])}")


def floor_line(limit, unit="epoch"):
    """``"floor X s/epoch (Y GFLOP per epoch at Z GFLOP/s), epoch / floor = R"``, then the same at the
    network's own shapes; ``limit`` is ``layer_times.floor``'s, for an epoch or (``unit="step"``,
    in ms) a step."""
    if not limit["seconds"]:
        return "no matrix products, no floor"
    scale, per = (1e3, "ms/step") if unit == "step" else (1, "s/epoch")
    own = ("not measured (out of time)" if limit["own_shapes_seconds"] is None else
           f"({limit['own_shapes_rate']:.1f} GFLOP/s) floor {scale * limit['own_shapes_seconds']:.3f} {per}, "
           f"{unit} / floor = {limit['over_own_shapes_floor']:.2f}")
    return (f"floor {scale * limit['seconds']:.3f} {per} ({limit['gflop']:.1f} GFLOP per {unit} at "
            f"{limit['rate']:.1f} GFLOP/s), {unit} / floor = {limit['over_floor']:.2f}; "
            f"at its own shapes {own}")


FLOOR_NOTE = ("(floor: the FLOPs at the 1024^3 product's rate, a bound no implementation on this CPU "
              "beats; at its own shapes: each product, forward and backward, at the rate measured for its "
              "shape alone as np.matmul of row-major arrays, which BLAS runs slower when small or skinny")
ATTENTION_NOTE = "; attention counts every T x T entry, masked or not"


def print_limits(limits, products, rates, which, unit="epoch"):
    """The limit: for each row, its floor and its median epoch (or step) over it.

    ``limits``: ``[(row label, layer_times.floor's dict), ...]``; ``products``: ``{name:
    step_products}`` of each distinct network the rows train; ``rates``: the GEMM rates the
    floors use, ``which`` says how they were chosen.
    """
    print(f"The limit: each row's matrix products per {unit} at the machine's float32 GEMM rate, "
          f"{rates['square']:.1f} GFLOP/s ({which}):")
    described = {}
    for name, counted in products.items():
        described.setdefault(describe_products(counted), []).append(name)
    for text, names in described.items():
        print("  " + (f"{', '.join(names)}: " if len(described) > 1 else "") + text)
    for label, limit in limits:
        print(f"  {label}: {floor_line(limit, unit)}")
    attention = any("MultiHeadAttention" in p["counted"] for p in products.values())
    print(FLOOR_NOTE + (ATTENTION_NOTE if attention else "") + ")\n")


def print_layer_times(layer_times, batch, epoch_seconds):
    """The per-layer table (``layer_times.time_layers``), checked against the epoch's time per batch."""
    rows, step = [tuple(r) for r in layer_times["rows"]], tuple(layer_times["step"])
    repeats = layer_times.get("repeats", 20)
    ms = lambda s: "" if s is None else f"{1e3 * s:.3f}"
    total = sum((f or 0) + (b or 0) for _, f, b, _ in rows) + step[1]
    lines = [(name, ms(f), ms(b), f"{100 * ((f or 0) + (b or 0)) / total:.1f}%",
              f"{flops / ((f or 0) + (b or 0)) / 1e9:.1f}" if flops else "") for name, f, b, flops in rows]
    lines.append((f"optimizer step ({step[0]}, all parameters)", ms(step[1]), "",
                  f"{100 * step[1] / total:.1f}%", ""))
    print(f"Per-layer times on one batch of {batch}, inside net.train_step in training mode "
          f"(median of {repeats} steps):")
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


def write_json(path, result):
    """Write ``result`` (``bench.py``'s dict of every number) to ``path`` as indented JSON."""
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, "w") as f:
        json.dump(result, f, indent=2)
    print(f"results written to {path}")
