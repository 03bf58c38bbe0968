"""The training loop: a training run, mini-batches, history, callbacks, and what stops training.

``fit`` makes a ``TrainingRun`` (the network, its optimizer, the history, the
current epoch and batch, the stop flag) and runs it. Per mini-batch:
``net.train_step`` (forward in training mode, cost, backward), then one
optimizer step. Callbacks and schedules receive the run and change the run
(``run.stop()``, ``run.optimizer.lr``), never the network's attributes.
The network keeps only ``net.history``, the last fit's, for convenience.

``fit`` guards the run:

- the data is checked before the first batch: no samples, NaN or infinite
  values, labels that are not class ids, malformed validation data and a
  network without layers are refused with a ``ValueError`` (see ``checks``);
- a non-finite cost stops training with ``TrainingDiverged`` naming the epoch
  and batch, and the network keeps the last weights whose cost was finite;
- Ctrl-C stops at the next batch boundary and returns the history so far.

``fit(..., distributed=True)`` trains data-parallel over MPI, one shard of every
batch per rank (``distributed.py``); ``checkpoint=`` and ``resume=`` keep and
continue a run epoch by epoch (``resume.py``).
"""
import contextlib
import math
import numbers
import signal
import sys
import threading
import time

import numpy as np

from . import resume as resuming
from .callbacks import Callback, CSVLogger, ModelCheckpoint, check_hooks
from .distributed import DistributedSteps, OnRootOnly, SharedInterrupt
from .layers import BatchNorm
from .optimizers import SGD, get_optimizer
from .targets import classes_of, prepare_targets
from .threads import splitter_for


class TrainingDiverged(FloatingPointError):
    """The cost became NaN or infinite; the network holds the last finite weights."""


class History(dict):
    """Per-epoch records: ``loss``, ``accuracy``, ``val_loss``, ``val_accuracy``,
    ``time`` (seconds of training), ``lr``; ``interrupted`` is True after Ctrl-C.

    A dict of lists, so ``history["val_accuracy"][-1]`` reads as expected.
    """

    def __init__(self):
        super().__init__(loss=[], accuracy=[], val_loss=[], val_accuracy=[], time=[], lr=[])
        self.interrupted = False
        self.has_validation = False

    @property
    def epochs(self):
        return len(self["loss"])

    def columns(self):
        """The records with one value per epoch, in order: ``loss``, ``accuracy``,
        ``val_loss`` and ``val_accuracy`` (with validation data), ``time``, ``lr``,
        then any list of the same length a user added (``history["bits_per_character"]``).
        """
        return [key for key, values in self.items()
                if isinstance(values, (list, tuple, np.ndarray)) and len(values) == self.epochs
                and (self.has_validation or not key.startswith("val_"))]

    def to_dataframe(self):
        """A pandas DataFrame with one row per epoch: an ``epoch`` column (from 1)
        and the ``columns()``. pandas is imported here, only when asked for.
        """
        import pandas as pd

        frame = pd.DataFrame({key: list(self[key]) for key in self.columns()})
        frame.insert(0, "epoch", range(1, self.epochs + 1))
        return frame


class TrainingRun:
    """One call of ``fit``: the training state, kept off the model.

    Callbacks and schedules receive the run in every hook (``on_epoch_end(run)``)
    and read or change what they need here.

    Attributes
    ----------
    net : Network
        The network being trained: the optimizer changes its weights (and a
        callback may load others, as ``EarlyStopping`` does at the end).
    optimizer : Optimizer
        Owns its buffers (moments, the copy for undo); a schedule sets ``optimizer.lr``.
    history : History
        Per-epoch records so far (``net.history`` is the same object).
    callbacks : list of Callback
    epochs : int
        The epochs asked for.
    batches : int
        Mini-batches per epoch.
    epoch : int
        The current epoch, from 1 (0 before the first).
    batch : int
        The current mini-batch of the epoch, from 1 (0 before the first).
    loss : float or None
        The cost of the last mini-batch (at the weights before its step).
    stop_requested : bool
        Set by ``stop()``: training ends after the current epoch.
    """

    def __init__(self, net, optimizer, callbacks=(), epochs=1, batches=1, has_validation=False):
        self.net, self.optimizer = net, optimizer
        self.callbacks = list(callbacks)
        self.history = History()
        self.history.has_validation = has_validation
        self.epochs, self.batches = int(epochs), int(batches)
        self.epoch, self.batch, self.loss = 0, 0, None
        self.stop_requested = False

    def stop(self):
        """End training after the current epoch (what ``EarlyStopping`` calls)."""
        self.stop_requested = True

    def notify(self, hook):
        """Call ``hook`` (``"on_epoch_end"``...) of every callback, in order, with this run."""
        for callback in self.callbacks:
            getattr(callback, hook)(self)

    def __repr__(self):
        return (f"TrainingRun(epoch={self.epoch}/{self.epochs}, batch={self.batch}/{self.batches}, "
                f"optimizer={self.optimizer!r})")


def _validation_pair(validation_data):
    """``(X_val, y_val)`` from ``validation_data``, refusing anything that is not a pair."""
    if not isinstance(validation_data, (tuple, list)) or len(validation_data) != 2:
        got = (f"a {type(validation_data).__name__} of length {len(validation_data)}"
               if hasattr(validation_data, "__len__") else f"a {type(validation_data).__name__}")
        raise ValueError(f"validation_data must be a pair (X_val, y_val), got {got}")
    return validation_data


def _split_off_validation(X, y, fraction, validation_data):
    """``(X_train, y_train, (X_val, y_val))``: the last ``fraction`` of the samples held out."""
    if validation_data is not None:
        raise ValueError("give validation_data or validation_split, not both")
    if isinstance(fraction, bool) or not isinstance(fraction, numbers.Real) or not 0 < fraction < 1:
        raise ValueError(f"validation_split must be a fraction between 0 and 1 (exclusive), got {fraction!r}")
    n = len(X)
    if len(y) != n:
        raise ValueError(f"X has {n} samples but y has {len(y)}")
    split = int(n * (1 - fraction))                  # Keras's rule: the first int(n (1 - f)) train
    if split < 1 or split == n:
        raise ValueError(f"validation_split={fraction} of {n} samples leaves "
                         f"{split} to train on and {n - split} to validate on: both need at least one")
    return X[:split], y[:split], (X[split:], y[split:])


# -- Ctrl-C at a batch boundary ----------------------------------------------------
class _StopOnInterrupt:
    """While active, the first Ctrl-C only sets ``requested``; a second one interrupts."""

    def __init__(self):
        self.requested = False
        self._previous = None

    def _handler(self, signum, frame):
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True
        print("\nInterrupted: stopping at the end of this batch (Ctrl-C again to abort).", file=sys.stderr)

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            self._previous = signal.signal(signal.SIGINT, self._handler)
        return self

    def __exit__(self, *exc):
        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)
        return False


def _is_terminal(stream):
    """Is ``stream`` a terminal? Redirected to a file or a pipe, it is not."""
    try:
        return stream.isatty()
    except (AttributeError, ValueError):  # no isatty, or closed
        return False


def _progress(total, label, verbose):
    """A tqdm bar over ``total`` batches on stderr, titled ``label``; None when
    ``verbose`` is 0 or stderr is not a terminal (so no ``\\r`` frames reach a log file)."""
    if verbose < 1 or not _is_terminal(sys.stderr):
        return None
    try:
        from tqdm import tqdm
    except ImportError:  # tqdm is in requirements.txt; train without a bar if it is missing
        return None
    return tqdm(total=total, desc=label, unit="batch", leave=False,
                mininterval=0.25, file=sys.stderr, dynamic_ncols=True)


def _diverged(optimizer, epoch, batch, loss):
    """Roll back the step that led to a non-finite cost, then raise ``TrainingDiverged``.

    The cost of batch ``b`` is computed with the weights from step ``b - 1``,
    so those weights are the suspects: undoing that step leaves the weights
    whose own cost (on batch ``b - 1``) was finite.
    """
    undone = optimizer.undo_last_step()
    raise TrainingDiverged(
        f"cost became {loss} at epoch {epoch}, batch {batch}: training stopped and the network keeps "
        f"the last weights with a finite cost{' (the last step was undone)' if undone else ''}. "
        f"Try a smaller learning rate or clip_norm.")


def _check_batchnorm_batches(net, n, batch_size, ranks=1):
    """A batch norm over (N, D) features (inside blocks too) cannot train on a last mini-batch of one sample,
    nor on a rank's shard of one (``ranks`` > 1, see ``distributed.py``)."""
    if not any(isinstance(layer, BatchNorm) and len(layer.input_shape) == 1
               for _, layer in net.named_layers()):
        return
    if n % batch_size == 1:
        raise ValueError(f"{n} samples in batches of {batch_size} leave a last batch of one, on which "
                         f"batch normalization cannot estimate a variance: choose another batch size")
    shards = {len(shard) for size in {batch_size, n % batch_size} - {0}
              for shard in np.array_split(np.arange(size), ranks)}
    if ranks > 1 and 1 in shards:
        raise ValueError(f"{n} samples in batches of {batch_size} over {ranks} ranks leave a rank a shard of "
                         f"one sample, on which batch normalization cannot estimate a variance: choose "
                         f"another batch size")


def fit(net, X, y, epochs=1, batch_size=32, optimizer=None, validation_data=None, callbacks=(),
        shuffle=True, verbose=1, threads="auto", validation_split=None, augment=None, *, distributed=False,
        checkpoint=None, resume=False, _epoch_label=None):
    """Train ``net`` on ``(X, y)`` with mini-batches; returns a ``History``.

    Parameters
    ----------
    X : array (N, *input_shape)
    y : int array (N,) of class ids, or (N, K) one-hot / real targets
    epochs, batch_size : int
    optimizer : Optimizer or str, default ``SGD(lr=0.01)``
    validation_data : (X_val, y_val), optional; evaluated after each epoch
    validation_split : float in (0, 1), optional
        Hold out the *last* fraction of ``(X, y)``, as given (before any
        shuffling, as Keras does), as the validation data: evaluated after
        each epoch, never trained on, monitored by ``EarlyStopping`` and
        ``ModelCheckpoint`` like ``validation_data`` (which it replaces: give
        one or the other). Shuffle the data first if its order means something.
    callbacks : list of ``Callback``; each hook receives the ``TrainingRun``
    augment : function (images, rng) -> images, optional
        Applied to every training batch, never to validation data, with the
        network's generator (``nnscratch.augment``: ``RandomShift``,
        ``RandomRotation``, ``RandomScale``, ``Compose``).
    shuffle : bool; reshuffle every epoch with the network's generator
    verbose : 0 silent, 1 a progress bar and one line per epoch, 2 the bar only.
        The bar is drawn only when stderr is a terminal: redirected to a log
        file, verbose=1 gives one line per epoch and no ``\\r`` frames.
    threads : "auto", 1 or 2
        Run each batch's step as two halves in two threads (``threads.py``:
        the same gradients up to float rounding, both cores busy through
        NumPy's one-core elementwise passes). "auto" does when the machine
        has 2 CPUs, a batch's forward is at least 0.25 GFLOP and the network has
        no dropout, batch norm or stateful recurrent layer; 1 never; 2 always
        (a ValueError for a network that does not qualify).
    distributed : bool
        Data-parallel over MPI: run the script with ``mpiexec -n P python ...``;
        every rank calls ``fit`` with the same data, trains on its shard of
        each batch, and all take the same step (``distributed.py``). Rank 0
        starts everyone from its weights, draws each epoch's order, prints
        (``verbose``) and runs the callbacks that write files
        (``ModelCheckpoint``, ``CSVLogger``); every rank runs the others and
        evaluates the validation data (on the same weights, so the same
        result), and rank 0 decides when to stop. Not with ``threads=2``.
    checkpoint : str or os.PathLike, optional
        After every epoch, write there what the next one depends on
        (weights, optimizer, history, generators, callbacks: ``resume.py``).
    resume : bool
        Start after the epoch ``checkpoint`` holds (from the start if there is
        no file yet): the run ends as an uninterrupted one would, bit for bit.
    _epoch_label : function epoch -> str, private
        How the bar and the epoch line name an epoch (1-based), by default
        ``"Epoch 3/20"``; the seed's interface counts from 0 (``"Epoch 2"``).

    Returns
    -------
    History (also kept as ``net.history``)

    Raises
    ------
    ValueError
        Before any work, for a network without layers, empty data, NaN or
        infinite values in X, X_val or real-valued targets, labels that are not
        class ids, or validation data that is not a pair ``(X_val, y_val)``.
    TypeError
        Before any work, for a callback whose hooks do not take the run
        (the old ``on_epoch_end(self, net, epoch, history)`` form).
    TrainingDiverged
        When the cost becomes NaN or infinite; the network keeps the last
        weights whose cost was finite.

    The reported training loss and accuracy are the means over the epoch's
    mini-batches (computed on the fly, as the weights change), plus the
    optimizer's L2 penalty when weight decay is on.
    """
    if int(epochs) != epochs or epochs < 1 or int(batch_size) != batch_size or batch_size < 1:
        raise ValueError(f"epochs and batch_size must be positive integers, got {epochs!r}, {batch_size!r}")
    label = _epoch_label or (lambda e: f"Epoch {e}/{epochs}")
    if validation_split is not None:
        X, y, validation_data = _split_off_validation(X, y, validation_split, validation_data)
    X = net._checked_batch(X, "X")
    targets, labels = prepare_targets(net, y, len(X), "y")
    validation = None
    if validation_data is not None:
        X_val, y_val = _validation_pair(validation_data)
        X_val = net._checked_batch(X_val, "X_val")
        validation = (X_val, *prepare_targets(net, y_val, len(X_val), "y_val"))
    if augment is not None and not callable(augment):
        raise ValueError(f"augment must be a function of (images, rng), such as nnscratch.augment.RandomShift(2), "
                         f"got {augment!r}")
    callbacks = list(callbacks or ())
    check_hooks(callbacks)
    optimizer = SGD(lr=0.01) if optimizer is None else get_optimizer(optimizer)
    if resume and checkpoint is None:
        raise ValueError("resume=True needs the checkpoint=path to resume from")
    if distributed and threads == 2:
        raise ValueError("threads=2 splits a process's batch over two threads: with distributed=True each "
                         "rank trains its shard on one thread; give threads='auto' or 1")
    parallel = DistributedSteps(net) if distributed else None
    _check_batchnorm_batches(net, len(X), batch_size, parallel.size if parallel else 1)
    free_length = len(net.input_shape) >= 1 and net.input_shape[0] is None and X.ndim > 1
    splitter = None if distributed else splitter_for(net, threads, batch_size,
                                                     positions=X.shape[1] if free_length else 1)
    try:
        step = splitter.train_step if splitter else net.train_step
        if augment is not None:
            step = _augmented(step, augment, net.rng)
        if parallel:
            parallel.local_step = step          # what runs on this rank's shard
            step = parallel.train_step          # the shard, then the sum over the ranks
            parallel.broadcast_parameters()
            if not parallel.is_root:
                verbose = 0
                callbacks = [OnRootOnly(c) if isinstance(c, (ModelCheckpoint, CSVLogger)) else c
                             for c in callbacks]
        with _blas_limit(parallel):
            return _fit_epochs(net, X, targets, labels, validation, callbacks, optimizer, epochs, batch_size,
                               shuffle, verbose, label, step, parallel, checkpoint, resume)
    finally:
        if splitter:
            splitter.close()


def _blas_limit(parallel):
    """In a distributed run, the ranks on one machine share its cores' BLAS threads
    (``distributed.blas_threads_per_rank``); otherwise nothing changes."""
    threads = parallel.blas_threads() if parallel else None
    if threads is None:
        return contextlib.nullcontext()
    from threadpoolctl import threadpool_limits
    return threadpool_limits(limits=threads, user_api="blas")


def _augmented(train_step, augment, rng):
    """``train_step`` on ``augment(X, rng)``: the training batches only (validation goes elsewhere)."""
    def step(X, targets, **kwargs):
        return train_step(augment(X, rng), targets, **kwargs)
    return step


def _fit_epochs(net, X, targets, labels, validation, callbacks, optimizer, epochs, batch_size, shuffle,
                verbose, label, train_step, parallel=None, checkpoint=None, resume=False):
    """fit's epochs, on checked data, each batch through ``train_step``; returns the history.

    ``parallel``: the ``DistributedSteps`` of a distributed run (whose ``train_step`` is ``train_step``),
    for what the ranks must agree on: each epoch's order, batch norm's statistics, when to stop.
    """
    run = TrainingRun(net, optimizer, callbacks, epochs, math.ceil(len(X) / batch_size),
                      has_validation=validation is not None)
    net.history = run.history  # the last fit's history, kept on the network for convenience
    saved = resuming.read(checkpoint, parallel) if resume else None
    if saved is None:
        run.notify("on_train_begin")
    done = resuming.restore(run, saved, parallel) if saved is not None else 0  # callbacks continue as saved
    with _StopOnInterrupt() as interrupt:
        if parallel:
            interrupt = SharedInterrupt(interrupt, parallel)   # every rank stops after the same batch
        for epoch in range(done + 1, run.epochs + 1):
            run.epoch, run.batch = epoch, 0
            run.notify("on_epoch_begin")
            if parallel:
                order = parallel.epoch_order(len(X), shuffle)
            else:
                order = net.rng.permutation(len(X)) if shuffle else np.arange(len(X))
            _train_epoch(run, X, targets, labels, order, batch_size,
                         _progress(run.batches, label(epoch), verbose), interrupt, train_step)
            if parallel:
                parallel.average_buffers()
                parallel.check_in_sync()
            if validation is not None:
                scores = net._scores(*validation)
                run.history["val_loss"].append(scores["loss"])
                run.history["val_accuracy"].append(scores["accuracy"])
            if interrupt.requested:
                run.history.interrupted = True
                break
            if verbose == 1:
                print(_epoch_line(run.history, label(epoch)))
            run.notify("on_epoch_end")
            if parallel:
                run.stop_requested = parallel.root_decides(run.stop_requested)
            if checkpoint is not None:
                resuming.write(checkpoint, run, parallel)
            if run.stop_requested:
                break
    run.notify("on_train_end")
    return run.history


def _train_epoch(run, X, targets, labels, order, batch_size, bar, interrupt, train_step):
    """One epoch of ``run``: for each mini-batch of ``order``, ``train_step`` (``net.train_step``,
    or its split over two threads), then the optimizer's step; appends the epoch's loss,
    accuracy, time and lr to the history.

    Stops early, after a batch, when Ctrl-C was pressed (``interrupt.requested``).
    """
    net, optimizer = run.net, run.optimizer
    params = net.parameters()
    loss_sum, correct, seen, predictions = 0.0, 0, 0, 0
    start = time.perf_counter()
    for b in range(run.batches):
        idx = order[b * batch_size:(b + 1) * batch_size]
        run.batch = b + 1
        loss, out = train_step(X[idx], targets[idx], return_output=True)
        if not math.isfinite(loss):
            if bar is not None:
                bar.close()
            _diverged(optimizer, run.epoch, run.batch, loss)
        optimizer.step(params)
        run.loss = loss
        loss_sum += loss * len(idx)
        batch_labels = labels[idx]
        correct += int(np.count_nonzero(classes_of(out) == batch_labels))
        predictions += batch_labels.size
        seen += len(idx)
        if bar is not None:
            bar.update()
        run.notify("on_batch_end")
        if interrupt.requested:
            break
    elapsed = time.perf_counter() - start
    if bar is not None:
        bar.close()
    history = run.history
    history["loss"].append(loss_sum / max(seen, 1) + optimizer.penalty(params))
    history["accuracy"].append(correct / max(predictions, 1))
    history["time"].append(elapsed)
    history["lr"].append(optimizer.lr)


def _epoch_line(history, label):
    line = (f"{label}: loss {history['loss'][-1]:.4f} "
            f"accuracy {history['accuracy'][-1]:.4f}")
    if history["val_loss"]:
        line += f" val_loss {history['val_loss'][-1]:.4f} val_accuracy {history['val_accuracy'][-1]:.4f}"
    return line + f" ({history['time'][-1]:.2f} s)"


# -- the seed's interface -------------------------------------------------------
def tuples_to_arrays(data):
    """The seed's list of ``(x (D,1), y (K,1) or int)`` to arrays ``X (N, D)``, ``Y``."""
    if not data:
        raise ValueError("the data list is empty")
    X = np.stack([np.asarray(x).reshape(-1) for x, _ in data])
    first = np.asarray(data[0][1])
    if first.ndim == 0:
        Y = np.array([int(t) for _, t in data])
    else:
        Y = np.stack([np.asarray(t).reshape(-1) for _, t in data])
    return X, Y


def _seed_epoch_label(epoch):
    """The seed counted epochs from 0: fit's epoch 1 is the seed's ``Epoch 0``."""
    return f"Epoch {epoch - 1}"


class _SeedEpochPrinter(Callback):
    """Prints the seed's line, epochs counted from 0 as the seed did:
    ``Epoch 3: Test_data: 9609 / 10000 Train Cost = ... Test Cost = ...``."""

    def __init__(self, n_test):
        self.n_test = n_test

    def on_epoch_end(self, run):
        label, history = _seed_epoch_label(run.epoch), run.history
        if self.n_test:
            correct = round(history["val_accuracy"][-1] * self.n_test)
            print(f"{label}: Test_data: {correct} / {self.n_test} Train Cost = "
                  f"{history['loss'][-1]:.6f} Test Cost = {history['val_loss'][-1]:.6f}")
        else:
            print(f"{label}: Train Cost = {history['loss'][-1]:.6f}")


def seed_sgd(net, training_data, epochs, mini_batch_size, eta, test_data=None, verbose=1):
    """``Network.stochastic_gradient_descent``: plain SGD on the seed's tuple lists.

    ``verbose=1`` prints the seed's line per epoch (and a bar on a terminal,
    titled like the line); ``verbose=0`` prints nothing.
    """
    X, Y = tuples_to_arrays(training_data)
    validation = tuples_to_arrays(test_data) if test_data else None
    printers = [_SeedEpochPrinter(len(test_data) if test_data else 0)] if verbose else []
    return fit(net, X, Y, epochs=epochs, batch_size=mini_batch_size, optimizer=SGD(lr=eta),
               validation_data=validation, callbacks=printers, verbose=2 if verbose else 0,
               _epoch_label=_seed_epoch_label)
