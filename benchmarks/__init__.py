"""Speed runs beside PyTorch: scripts, not tests (pytest collects nothing here).

``bench.py`` is the command line; the modules it is made of:

- ``models``: what each ``--model`` name trains: the nnscratch network, its
  optimizer and batch, the PyTorch reference in ``torch_ref.py``, the target;
  and the seed's per-sample loop (``--seed-baseline``).
- ``harness``: the parent process: which rows run, each training in a fresh
  process (``worker`` or ``torch_ref.py``), the rows interleaved in every
  repetition, each process's peak memory.
- ``worker``: the child process for one nnscratch row: load MNIST, warm up,
  time ``net.fit``, evaluate, optionally ``layer_times``.
- ``layer_times``: each layer's forward and backward, timed inside
  ``net.train_step``, and the optimizer step.
- ``machine``: the CPU model, NumPy's BLAS kernel and threads, the load average.
- ``report``: the header, the table, the notes, the verdict and the JSON file.
- ``torch_ref.py``: the same models in PyTorch; run only under the Python of a
  separate virtual environment (``--torch-python``), never imported here.

Importing the package puts ``src/`` first on ``sys.path`` (``nnscratch`` and
``model_zoo``), or the ``src/`` of another checkout when the environment
variable ``BENCH_NNSCRATCH_SRC`` names one (``--baseline`` rows do that).
"""
import os
import sys

REPO = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
SRC = os.path.abspath(os.environ.get("BENCH_NNSCRATCH_SRC") or os.path.join(REPO, "src"))
if SRC not in sys.path:
    sys.path.insert(0, SRC)
