"""What the benchmark ran on: the CPU, NumPy's BLAS kernel and threads, the load average.

Ratios to PyTorch differ between CPU kinds (vector width, cache sizes) and
BLAS builds (OpenBLAS picks a kernel for the CPU it finds, "Haswell" or
"SkylakeX"; MKL and oneDNN have their own), so every run names them.
"""
import os
import platform
import re

import numpy as np

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
