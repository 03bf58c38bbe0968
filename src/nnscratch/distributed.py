"""Data-parallel training over MPI: every rank runs the same network on its shard of each batch.

Run a script under MPI (``pip install mpi4py mpich``, no system MPI needed)::

    mpiexec -n 2 python train.py        # fit(net, X, y, ..., distributed=True) inside

Every rank holds the whole data set and the same network. Each global batch
of N samples is cut into P contiguous shards (``np.array_split``'s rule: the
first ``N mod P`` ranks take one sample more, so any N works; a rank with an
empty shard contributes zeros). Rank r runs ``net.train_step`` on its n_r
samples, giving the mean gradient over its shard; the batch's gradient and
cost are the weighted means, as in ``threads.py``::

    ∂C/∂θ = Σ_r n_r ∂C_r/∂θ / N,     C = Σ_r n_r C_r / N

The sum over ranks is an ``Allreduce`` of one flat buffer (every gradient,
then the cost and a stop flag; in pieces of 2 MiB), so every rank gets the same gradient and takes
the same optimizer step from the same weights (broadcast from rank 0 at the
start): the weights stay identical on every rank, and equal to one process's
on the same batches up to the order of the float additions (tests/test_distributed.py).

What each rank draws. The order of each epoch is drawn by rank 0 from the
network's generator and broadcast (so a P-rank run trains on the batches a
one-process ``fit`` with that seed would), never drawn on every rank from a
shared generator: dropout draws as many numbers as its shard has samples, and
shards differ, so the generators would drift apart. Rank 0's dropout and
augmentation use the network's generator; rank r > 0 reseeds it from
``[seed, r]``: a run is reproducible for a given P (and differs between Ps).

Batch norm normalizes each shard by its own statistics (as PyTorch's DDP does
without SyncBatchNorm); the running statistics, linear in each batch's, are
averaged over the ranks at every epoch's end, so evaluation is the same everywhere.
"""
import contextlib
import numbers
import os
import sys
import time
import zlib

import numpy as np

from .callbacks import Callback


BUCKET_BYTES = 2 ** 21   # the gradients are summed in pieces of 2 MiB (see DistributedSteps.__init__)
ABORT_PAUSE = 0.5   # seconds between printing a rank's error and aborting the job (see _abort)


def _mpi():
    """mpi4py's MPI module, or an ImportError saying what to install."""
    try:
        from mpi4py import MPI
    except ImportError:
        raise ImportError("distributed training needs mpi4py and an MPI library: pip install mpi4py mpich "
                          "(then run the script with mpiexec -n 2 python ...)") from None
    return MPI


def world():
    """MPI's COMM_WORLD: every process mpiexec started."""
    return _mpi().COMM_WORLD


def blas_threads_per_rank(comm=None):
    """BLAS threads for each rank so that the ranks on one machine share its cores: cores // local ranks.

    Two ranks on 2 cores, each with OpenBLAS's default of one thread per core, would run 4 threads on
    2 cores, and a BLAS thread that waits for a descheduled sibling stalls its whole product.
    ``None`` when the user set ``OPENBLAS_NUM_THREADS`` / ``OMP_NUM_THREADS`` (their choice stands).
    """
    if any(os.environ.get(name) for name in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")):
        return None
    comm = comm or world()
    local = comm.Split_type(_mpi().COMM_TYPE_SHARED)      # the ranks on this machine
    ranks_here = local.Get_size()
    local.Free()
    return max(1, (os.cpu_count() or 1) // ranks_here)


def rank(comm=None):
    """This process's rank, from 0."""
    return (comm or world()).Get_rank()


def is_root(comm=None):
    """Is this rank 0, the one that prints and writes files?"""
    return rank(comm) == 0


@contextlib.contextmanager
def run_guard(comm=None):
    """Run a rank's code so that a failure anywhere ends the whole job within seconds.

    An exception (or ``sys.exit`` with a non-zero status) on one rank would
    leave the others waiting in their next ``Allreduce`` for ever; here it
    prints ``error: rank R: <message>`` and calls ``Abort``, which makes
    mpiexec stop every rank. (A rank killed outright is mpiexec's to notice:
    MPICH's hydra ends the job too.) ``NNSCRATCH_TRACEBACK=1`` prints the traceback first.
    """
    if comm is None:
        try:
            comm = world()
        except ImportError:   # no MPI: this is the only process, and fit(distributed=True) will say why
            yield None
            return
    try:
        yield comm
    except SystemExit as done:
        if done.code in (None, 0) or comm.Get_size() == 1:   # alone, there is nobody to stop
            raise
        _abort(comm, f"exited with status {done.code}: stopping every rank",
               done.code if isinstance(done.code, int) else 1)
    except BaseException as error:
        if comm.Get_size() == 1:
            raise
        if os.environ.get("NNSCRATCH_TRACEBACK"):
            import traceback
            traceback.print_exc()
        _abort(comm, error or type(error).__name__, 1)


def _abort(comm, message, status):
    print(f"error: rank {comm.Get_rank()}: {message}", file=sys.stderr, flush=True)
    # mpiexec forwards a rank's output through a pipe and stops when the job is aborted: once, in
    # about 40 runs on the loaded 2-core machine, the whole message was lost. The pause gives the
    # pipe time to drain (not seen again in 30 runs with it, nor in 32 without: rare either way).
    time.sleep(ABORT_PAUSE)
    comm.Abort(status)


class DistributedSteps:
    """``train_step`` for ``fit(..., distributed=True)``: this rank's shard of each global batch,
    gradients summed over the ranks (see the module docstring).

    Parameters
    ----------
    net : Network
    comm : MPI communicator, default COMM_WORLD
    local_step : function (X, targets, return_output) -> loss or (loss, out), default ``net.train_step``
        What runs on this rank's shard (fit passes ``net.train_step`` wrapped by augmentation).
    bucket_bytes : int or None, default ``BUCKET_BYTES`` (2 MiB)
        The flat buffer is reduced in consecutive pieces of this many bytes, one
        ``Allreduce`` each; None reduces it whole, in one.

    Attributes
    ----------
    allreduce_seconds, gather_seconds : float
        Time spent in the gradients' ``Allreduce`` and the outputs' ``Allgatherv``, summed over ``steps``.
    """

    def __init__(self, net, comm=None, local_step=None, bucket_bytes=BUCKET_BYTES):
        self.net, self.comm = net, comm or world()
        self.rank, self.size = self.comm.Get_rank(), self.comm.Get_size()
        self.is_root = self.rank == 0
        self.local_step = local_step or net.train_step
        self.params = net.parameters()
        # THE FLAT BUFFER: every weighted gradient (n_r / N) ∂C_r/∂θ end to end, then (n_r / N) C_r
        # and the stop flag, allocated once, and reduced in BUCKETS of 2 MiB rather than whole: with
        # MPICH 5.0.2, 2 ranks on 2 cores (AMD EPYC), the mlp800's 5.1 MB in one Allreduce made a
        # step 20.0 ms, in 2 MiB pieces 13.9 ms, in 512 KiB pieces 14.1 ms (medians of 5 jobs); the
        # CNN's 0.9 MB is one piece either way (19.0 and 18.2 ms: the noise). Why one large
        # Allreduce is slower was not investigated (benchmarks/README.md, distributed_scaling.py).
        self.offsets = np.cumsum([0] + [p.data.size for p in self.params])
        self.flat = np.zeros(self.offsets[-1] + 2, dtype=net.dtype)
        self.buckets = self._buckets(bucket_bytes)
        self.steps, self.allreduce_seconds, self.gather_seconds = 0, 0.0, 0.0
        self.local_interrupt = None   # this rank's Ctrl-C flag (fit's), sent with every step
        self.stop_agreed = False      # whether any rank had it at the last step

    def blas_threads(self):
        """BLAS threads for this rank while it trains (see ``blas_threads_per_rank``); None: leave as is."""
        return blas_threads_per_rank(self.comm) if self.size > 1 else None

    def _buckets(self, bucket_bytes):
        """``(start, end)`` slices of ``flat``, each reduced by one ``Allreduce``: the whole buffer, or
        consecutive pieces of ``bucket_bytes`` (any cut will do: the sum is elementwise)."""
        size = len(self.flat)
        step = size if bucket_bytes is None else max(1, int(bucket_bytes) // self.flat.itemsize)
        return [(start, min(start + step, size)) for start in range(0, size, step)]

    # -- the start of a run --------------------------------------------------------
    def broadcast_parameters(self):
        """Rank 0's weights and buffers (batch norm's statistics) to every rank; reseed rank r's
        generator from ``[seed, r]`` (rank 0 keeps the network's)."""
        for p in self.params:
            self.comm.Bcast(p.data, root=0)
        for _, layer in self.net.named_layers():
            for name in layer.buffers():
                self.comm.Bcast(getattr(layer, name), root=0)
        seed = self.net.seed if isinstance(self.net.seed, numbers.Integral) else None
        seed = self.comm.bcast(seed if seed is not None else np.random.SeedSequence().entropy, root=0)
        if self.rank > 0:   # set in place: the dropout layers hold this generator
            self.net.rng.bit_generator.state = np.random.default_rng([seed, self.rank]).bit_generator.state

    def epoch_order(self, n, shuffle):
        """The epoch's sample order, drawn on rank 0 (the network's generator) and broadcast."""
        order = self.net.rng.permutation(n) if shuffle and self.is_root else np.arange(n)
        if shuffle:
            self.comm.Bcast(order, root=0)
        return order

    # -- one step ----------------------------------------------------------------------
    def shard(self, n):
        """This rank's ``slice`` of a batch of ``n``: ``np.array_split``'s rule."""
        base, extra = divmod(n, self.size)
        start = self.rank * base + min(self.rank, extra)
        return slice(start, start + base + (self.rank < extra))

    def train_step(self, X, targets, *, return_output=False):
        """``net.train_step`` on the global batch ``X`` (N, ...), computed as P shards: fills every
        parameter's ``.grad`` with the batch's mean gradient and returns its cost (and output)."""
        n = len(X)
        mine = self.shard(n)
        n_mine = mine.stop - mine.start
        flat = self.flat
        if n_mine:
            loss, out = self.local_step(X[mine], targets[mine], return_output=True)
        else:
            loss, out = 0.0, None
        weight = n_mine / n                 # n_r / N, scaled before the sum: no pass over flat after it
        for p, start, end in zip(self.params, self.offsets[:-1], self.offsets[1:]):
            if n_mine and np.isfinite(loss):   # (n_r / N) ∂C_r/∂θ (a diverged shard skipped backward)
                np.multiply(p.grad, weight, out=flat[start:end].reshape(p.data.shape))
            else:
                flat[start:end] = 0
        interrupted = bool(self.local_interrupt and self.local_interrupt.requested)
        flat[-2], flat[-1] = loss * weight, float(interrupted)
        started = time.perf_counter()
        in_place = _mpi().IN_PLACE
        for start, end in self.buckets:
            self.comm.Allreduce(in_place, flat[start:end])          # Σ_r (n_r / N) ∂C_r/∂θ
        self.allreduce_seconds += time.perf_counter() - started
        self.steps += 1
        for p, start, end in zip(self.params, self.offsets[:-1], self.offsets[1:]):
            p.grad = flat[start:end].reshape(p.data.shape)          # a view: backward replaces it next step
        self.stop_agreed = flat[-1] > 0
        loss = float(flat[-2])
        if not return_output:
            return loss
        return loss, self._gather(out, n)

    def _gather(self, out, n):
        """Every shard's output, in order: the global batch's (N, ...), for fit's accuracy."""
        started = time.perf_counter()
        if n < self.size:    # some shard is empty: every rank knows it, so all take this path
            outputs = np.concatenate([o for o in self.comm.allgather(out) if o is not None])
        else:
            per_sample = out.size // len(out)
            counts = [(n // self.size + (r < n % self.size)) * per_sample for r in range(self.size)]
            outputs = np.empty((n,) + out.shape[1:], dtype=out.dtype)
            self.comm.Allgatherv(np.ascontiguousarray(out), [outputs, counts])
        self.gather_seconds += time.perf_counter() - started
        return outputs

    # -- the end of an epoch ----------------------------------------------------------
    def average_buffers(self):
        """Average batch norm's running statistics over the ranks (each rank's came from its shards)."""
        for _, layer in self.net.named_layers():
            for name in layer.buffers():
                buffer = getattr(layer, name)
                self.comm.Allreduce(_mpi().IN_PLACE, buffer)
                buffer /= self.size

    def root_decides(self, value):
        """Rank 0's ``value`` on every rank (whether to stop: callbacks could differ in the last bit)."""
        return self.comm.bcast(value, root=0)

    def check_in_sync(self):
        """Raise when the ranks' weights differ (they never should: every step is the same everywhere)."""
        checksum = 0
        for p in self.params:
            checksum = zlib.crc32(np.ascontiguousarray(p.data), checksum)
        sums = self.comm.allgather(checksum)
        if len(set(sums)) > 1:
            raise RuntimeError(f"the ranks' weights differ (checksums {sums}): the ranks ran different steps")

    def rng_states(self):
        """Every rank's generator state, in rank order (for a checkpoint)."""
        return self.comm.allgather(self.net.rng.bit_generator.state)


class SharedInterrupt:
    """Ctrl-C seen by every rank after the same batch: ``requested`` is whether any rank had
    it when the last step's ``Allreduce`` ran (the flag travels in the flat buffer)."""

    def __init__(self, local, steps):
        steps.local_interrupt = local
        self.steps = steps

    @property
    def requested(self):
        return self.steps.stop_agreed


class OnRootOnly(Callback):
    """Stands, on ranks > 0, for a callback that writes files (``ModelCheckpoint``, ``CSVLogger``):
    rank 0 alone runs it, so that ranks never write the same file at once. Its hooks do nothing."""

    def __init__(self, callback):
        self.kind = type(callback).__name__
