"""What the benchmark ran on: the CPU, NumPy's BLAS kernel and threads, the load average, the GEMM rate.

Ratios to PyTorch differ between CPU kinds (vector width, cache sizes) and
BLAS builds (OpenBLAS picks a kernel for the CPU it finds, "Haswell" or
"SkylakeX"; MKL and oneDNN have their own), so every run names them. The
float32 GEMM rate (``gemm_rate``) says what this machine can do at all: the
floor of a model's epoch is its matrix products at that rate.
"""
import os
import platform
import re
import statistics
import time

import numpy as np

GEMM_SIZE = 1024  # the square product of the machine's rate: large enough for BLAS's full speed
THREAD_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "BLIS_NUM_THREADS")
VECTOR_FLAGS = ("avx512f", "avx512_bf16", "amx_tile", "avx2", "fma", "avx", "sse4_2", "neon", "asimd")


def cpu_model():
    """The CPU's name, with what a virtual machine's bare name leaves out.

    From ``/proc/cpuinfo`` (Linux): ``model name``, the vendor, family and
    model numbers (a hypervisor may show only "AMD EPYC"; family 25 model 17
    still says Zen 4) and the widest vector extensions among ``VECTOR_FLAGS``.
    Elsewhere ``platform.processor()``.

    Returns
    -------
    str, e.g. ``"AMD EPYC (AuthenticAMD family 25 model 17; avx2, fma, avx, sse4_2)"``
    """
    try:
        with open("/proc/cpuinfo") as f:
            text = f.read()
    except OSError:
        return platform.processor() or platform.machine()

    def field(name):
        m = re.search(rf"^{name}\s*:\s*(.*)$", text, re.MULTILINE)
        return m.group(1).strip() if m else None

    name = field("model name") or field("Hardware") or field("CPU part") or platform.machine()
    flags = set((field("flags") or field("Features") or "").split())
    ids = " ".join(f"{label} {value}" for label, value in
                   (("", field("vendor_id")), ("family", field("cpu family")), ("model", field("model")))
                   if value).strip()
    vector = ", ".join(flag for flag in VECTOR_FLAGS if flag in flags)
    details = "; ".join(part for part in (ids, vector) if part)
    return f"{name} ({details})" if details else name


def blas_info():
    """NumPy's BLAS libraries as threadpoolctl finds them loaded in this process.

    Returns
    -------
    list of dict with ``internal_api`` (openblas, mkl, blis), ``version``,
    ``architecture`` (OpenBLAS's kernel, e.g. "Haswell"; MKL's "corename"
    where reported), ``threading_layer`` and ``num_threads``; or a str saying
    why there is none (threadpoolctl comes with scikit-learn).
    """
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        return "threadpoolctl not installed"
    found = [{"internal_api": d.get("internal_api"), "version": d.get("version"),
              "architecture": d.get("architecture") or d.get("corename"),
              "threading_layer": d.get("threading_layer"), "num_threads": d.get("num_threads")}
             for d in threadpool_info() if d.get("user_api") == "blas"]
    return found or "no BLAS found by threadpoolctl"


def describe_blas(info):
    """``blas_info()`` as one line: ``openblas 0.3.31 (kernel Haswell, pthreads), 2 threads``."""
    if isinstance(info, str):
        return info
    return "; ".join(f"{d['internal_api']} {d['version']} (kernel {d['architecture'] or '?'}, "
                     f"{d['threading_layer'] or '?'}), {d['num_threads']} threads" for d in info)


def loadavg():
    """The 1, 5 and 15 minute load averages (None where the OS has none).

    Another job on the machine shows here, and multi-threaded BLAS slows down
    a lot under it.
    """
    try:
        return tuple(round(x, 2) for x in os.getloadavg())
    except (AttributeError, OSError):
        return None


def describe():
    """``{"cpu", "cpus", "machine", "python", "numpy", "blas", "thread_variables"}`` of this process,
    for the header and the JSON; ``thread_variables`` holds those of ``THREAD_VARIABLES`` that are set
    (the children inherit them, PyTorch's too)."""
    return {"cpu": cpu_model(), "cpus": os.cpu_count(), "machine": platform.machine(),
            "python": platform.python_version(), "numpy": np.__version__, "blas": blas_info(),
            "thread_variables": {k: os.environ[k] for k in THREAD_VARIABLES if k in os.environ}}


def time_gemm(shape, rng, deadline, repeats=5, min_seconds=0.005):
    """Median seconds of one float32 ``np.matmul`` of ``shape`` = (stack, m, k, n), in this process's threads.

    A stack > 1 is one call on (stack, m, k) @ (stack, k, n), as the attention layer's. One
    untimed call first (page faults, BLAS waking its threads), a second to see how many calls
    make one timing of at least ``min_seconds`` (a small product is timed over many calls, so
    that the clock's resolution does not matter; the Python call is counted, as the layers pay
    it too), then the median of ``repeats`` timings, fewer (at least one) once the clock passes
    ``deadline`` (a ``time.perf_counter()`` value).
    """
    stack, m, k, n = shape
    lead = (stack,) if stack > 1 else ()
    a = rng.standard_normal(lead + (m, k), dtype=np.float32)
    b = rng.standard_normal(lead + (k, n), dtype=np.float32)
    out = np.empty(lead + (m, n), dtype=np.float32)
    np.matmul(a, b, out=out)
    start = time.perf_counter()
    np.matmul(a, b, out=out)
    calls = max(1, int(min_seconds / max(time.perf_counter() - start, 1e-7)))
    timings = []
    while len(timings) < repeats and (not timings or time.perf_counter() < deadline):
        start = time.perf_counter()
        for _ in range(calls):
            np.matmul(a, b, out=out)
        timings.append((time.perf_counter() - start) / calls)
    return statistics.median(timings)


def gemm_rate(shapes=(), budget=2.0):
    """The machine's float32 GEMM rate in GFLOP/s, as NumPy gets it here: the square product and ``shapes``.

    Measured in the calling process, with the BLAS threads NumPy uses there (the benchmark's
    children inherit the same settings): a 1024 x 1024 x 1024 product, the machine's rate, which
    sets the floor; then each of ``shapes`` (a model's own products, most far smaller: BLAS runs
    them slower), in their order, until ``budget`` seconds have gone by; those left are not
    measured (None). A machine shared with other jobs gives lower and noisier rates, and a
    product that spins its BLAS threads against another job's can take a hundred times longer:
    measure at the start and the end of a run and keep the higher (``higher_rates``).

    Parameters
    ----------
    shapes : iterable of (stack, m, k, n)
        The most important first (``step_products``'s, by their FLOPs: the largest share of a floor).
    budget : float
        Seconds for the whole call (the square product alone takes about 0.3 s on 2 quiet cores).

    Returns
    -------
    dict with ``square`` (GFLOP/s), ``size`` (1024), ``shapes`` (``{shape: GFLOP/s or None}``),
    ``seconds`` (the time the measurement took)
    """
    rng, start = np.random.default_rng(0), time.perf_counter()
    deadline, n = start + budget, GEMM_SIZE
    square = time_gemm((1, n, n, n), rng, deadline=float("inf"))  # always its 5 timings, about 0.3 s
    rates = {"square": float(2 * n ** 3 / square / 1e9), "size": n, "shapes": {}}
    for shape in dict.fromkeys(shapes):  # each shape once, in order
        if time.perf_counter() > deadline:
            rates["shapes"][shape] = None
            continue
        flops = 2 * np.prod(shape, dtype=np.float64)
        rates["shapes"][shape] = float(flops / time_gemm(shape, rng, deadline) / 1e9)
    rates["seconds"] = time.perf_counter() - start
    return rates


HIGHER_RATES = "the higher of start and end, for each shape"  # what the floors use, as the output says


def higher_rates(first, second):
    """``gemm_rate``'s two measurements merged: the higher rate of each, the square's and every shape's
    (another job on the machine can only slow a product down)."""
    higher = lambda r, q: max(r, q) if r and q else r or q  # None: not measured that time
    return {"square": max(first["square"], second["square"]), "size": first["size"],
            "shapes": {s: higher(r, second["shapes"].get(s)) for s, r in first["shapes"].items()},
            "seconds": first["seconds"] + second["seconds"]}


def describe_gemm(rates):
    """``gemm_rate``'s result as one line: the square rate, the range over the shapes, the time taken."""
    shapes = [r for r in rates["shapes"].values() if r]
    missed = len(rates["shapes"]) - len(shapes)
    spread = (f"; the network's {len(shapes)} product shape{'s' * (len(shapes) != 1)}, each alone: "
              f"{min(shapes):.1f} to {max(shapes):.1f} GFLOP/s" if shapes else "")
    spread += f" ({missed} not measured: out of time)" if missed else ""
    return (f"{rates['square']:.1f} GFLOP/s ({rates['size']}x{rates['size']}x{rates['size']} float32 "
            f"np.matmul, median of 5){spread} (measured in {rates['seconds']:.1f} s)")


def gemm_json(rates):
    """``gemm_rate``'s result for JSON: the shapes as ``"stack x m x k x n"`` strings."""
    return dict(rates, shapes={"x".join(map(str, s)): r for s, r in rates["shapes"].items()})
