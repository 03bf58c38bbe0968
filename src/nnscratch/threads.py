"""Data-parallel threads in one process: one training step on the two halves of a batch at once.

Why. NumPy runs every elementwise operation (``exp``, ``tanh``, layer norm's
passes, the additions) on one core, so on a 2-core machine one core idles
through them; only the matrix products use both (BLAS's threads). Here two
threads each run the *whole* network on half of the batch, with BLAS held to
one thread each: NumPy releases the GIL inside its loops and its BLAS calls,
so the elementwise passes run on both cores too, and the products still do.
Measured on the char-GPT (batch 32 x 128, AMD EPYC, 2 cores, OpenBLAS
Haswell), fit alternating the two ways in one process: 468-507 ms a step one
way, 274-345 ms split; the sequential-MNIST LSTM 16.5 -> 14.7 ms a batch
(benchmarks/README.md). Per-step hand-offs cost about 0.1 ms here, so small
steps (the MLPs) stay on the one-thread path.

The same math as ``Network.train_step`` (the readable path; this calls it):
each half's gradients are the mean over its own n_i samples, so the batch's
gradient and cost are their weighted means::

    ∂C/∂θ = (n_1 ∂C_1/∂θ + n_2 ∂C_2/∂θ) / N,     C = (n_1 C_1 + n_2 C_2) / N

equal to the one-thread step's up to float rounding (tests/test_threads.py).
The two halves run on *replicas*: copies of the network whose parameters
share the network's arrays (the optimizer's in-place steps are seen by both)
but keep their own gradients and caches.

Only networks for which the split changes nothing but rounding qualify
(``split_refusal``): none of their layers draws random numbers in training
(dropout: the masks would come from another stream), keeps batch statistics
(batch norm: each half would normalize by its own), or carries a recurrent
state between batches.
"""
import copy
import os
import threading

import numpy as np

from .layers import BatchNorm
from .layers.recurrent import Recurrent

# Forward FLOPs of one batch (the layers' flops()) below which "auto" does not split: the
# sequential-MNIST LSTM (0.29 GFLOP a batch) gained 16.5 -> 14.7 ms a batch (fit, 200 batches,
# four alternations); smaller steps were not measured to gain, and a hand-off costs ~0.1 ms.
MIN_FLOPS = 2.5e8


def split_refusal(net):
    """Why ``net``'s training step cannot be split without changing its results, or None."""
    for name, layer in net.named_layers():
        # a layer that may draw random numbers qualifies only when its rate says it will not
        # (Dropout's p, attention's dropout = 0); an unknown kind that may draw is refused
        if getattr(layer, "uses_rng", False) and not (getattr(layer, "p", None) == 0
                                                       or getattr(layer, "dropout", None) == 0):
            return f"{name} ({type(layer).__name__}) draws random numbers in training"
        if isinstance(layer, BatchNorm):
            return f"{name} (BatchNorm) normalizes by the statistics of the whole batch"
        if isinstance(layer, Recurrent) and layer.stateful:
            return f"{name} ({type(layer).__name__}) carries its state from batch to batch"
    return None


def _blas_controller():
    """threadpoolctl's controller of NumPy's BLAS, or None when it is missing or finds no BLAS."""
    try:
        from threadpoolctl import ThreadpoolController
    except ImportError:
        return None
    controller = ThreadpoolController()
    return controller if controller.select(user_api="blas").lib_controllers else None


class SplitSteps:
    """``train_step`` on two halves of each batch in two threads (see the module docstring).

    Parameters
    ----------
    net : Network
        Must qualify (``split_refusal(net)`` is None).
    """

    def __init__(self, net):
        refusal = split_refusal(net)
        if refusal:
            raise ValueError(f"the training step cannot be split over threads: {refusal}")
        self.net = net
        self.controller = _blas_controller()
        self.replicas = [self._replica() for _ in range(2)]
        self._work = threading.Event()
        self._done = threading.Event()
        self._job = None
        self._error = None
        threading.Thread(target=self._serve, daemon=True, name="nnscratch-split-step").start()

    def _replica(self):
        """A copy of the network (its caches and history left out) sharing its parameter arrays."""
        net = self.net
        kept = {k: v for k, v in vars(net).items() if k in ("history",) or k.startswith("_cache")}
        for k in kept:
            delattr(net, k)
        try:
            replica = copy.deepcopy(net)
        finally:
            vars(net).update(kept)
        for mine, theirs in zip(replica.parameters(), net.parameters()):
            mine.data = theirs.data
        return replica

    def _shares_parameters(self):
        """False once the network's parameter arrays were replaced (``astype``, ``load_state_dict``)."""
        return all(mine.data is theirs.data for replica in self.replicas
                   for mine, theirs in zip(replica.parameters(), self.net.parameters()))

    def _serve(self):
        while True:
            self._work.wait()
            self._work.clear()
            if self._job is None:           # close()
                return
            try:
                self._job()
            except BaseException as error:  # handed to the calling thread, which raises it
                self._error = error
            self._done.set()

    def close(self):
        """End the worker thread and let the replicas (and their per-batch arrays) go."""
        self._job, self.replicas = None, []
        self._work.set()

    def train_step(self, X, targets, *, return_output=False):
        """``Network.train_step`` on the whole batch, computed as two halves in parallel;
        fills the network's ``.grad`` and returns the cost (and the output)."""
        n = len(X)
        if n < 2:
            return self.net.train_step(X, targets, return_output=return_output)
        if not self._shares_parameters():
            self.replicas = [self._replica() for _ in range(2)]
        half = (n + 1) // 2
        shards = [(X[:half], targets[:half]), (X[half:], targets[half:])]
        results = [None, None]

        def run(i):
            results[i] = self.replicas[i].train_step(*shards[i], return_output=True)

        self._job, self._error = (lambda: run(1)), None
        self._done.clear()
        with self.controller.limit(limits=1, user_api="blas") if self.controller else _nothing():
            self._work.set()
            try:
                run(0)
            finally:
                self._done.wait()
        if self._error is not None:
            raise self._error
        weights = (half / n, (n - half) / n)
        loss = weights[0] * results[0][0] + weights[1] * results[1][0]
        for p, a, b in zip(self.net.parameters(), *(r.parameters() for r in self.replicas)):
            p.grad = a.grad * p.data.dtype.type(weights[0])
            p.grad += b.grad * p.data.dtype.type(weights[1])
        if return_output:
            return loss, np.concatenate([results[0][1], results[1][1]])
        return loss


class _nothing:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def splitter_for(net, threads, batch_size, positions=1):
    """A ``SplitSteps`` for ``fit`` to call each batch (and ``close`` after), or None for ``net.train_step``.

    ``threads``: 1 never splits; 2 splits (a ValueError when the network does not qualify);
    "auto" splits when there are at least 2 CPUs, the network qualifies, NumPy's BLAS can be
    held to one thread (threadpoolctl), and one batch's forward is at least ``MIN_FLOPS``
    (the layers' ``flops()`` per sample, counted per position for a network of free sequence
    length, times ``positions``, its training sequences' length).
    """
    if threads not in ("auto", 1, 2):
        raise ValueError(f"threads must be 'auto', 1 or 2, got {threads!r}")
    if threads == 1 or batch_size < 2:
        return None
    if threads == 2:
        return SplitSteps(net)
    flops = sum(layer.flops() for layer in net.layers) * batch_size * positions
    if ((os.cpu_count() or 1) < 2 or split_refusal(net) or flops < MIN_FLOPS
            or _blas_controller() is None):
        return None
    return SplitSteps(net)
