"""Callbacks: hooks into ``fit``, and what every long run wants: early
stopping, checkpoints and a log of its epochs.

Every hook receives the ``TrainingRun`` (``nnscratch.training``) and reads
what it needs from it: ``run.net``, ``run.optimizer``, ``run.history``,
``run.epoch`` and ``run.batch`` (from 1), ``run.loss`` (the last batch's
cost). A callback changes the run, not the network's attributes:
``run.stop()`` ends training after this epoch, ``run.optimizer.lr = ...``
sets the learning rate.

Examples
--------
>>> class PrintLoss(Callback):
...     def on_epoch_end(self, run):
...         print(run.epoch, run.history["loss"][-1])
"""
import csv
import inspect
import os

import numpy as np

HOOKS = ("on_train_begin", "on_epoch_begin", "on_batch_end", "on_epoch_end", "on_train_end")


class Callback:
    """Hooks called by ``fit``, each with the ``TrainingRun``; override the ones you need.

    ``on_train_begin(run)`` before the first epoch; ``on_epoch_begin(run)``
    (``run.epoch`` set); ``on_batch_end(run)`` after each optimizer step
    (``run.batch``, ``run.loss``); ``on_epoch_end(run)`` once the epoch's
    history is recorded (not after an epoch cut short by Ctrl-C);
    ``on_train_end(run)`` at the end, however training stopped (except a divergence).
    """

    def on_train_begin(self, run):
        pass

    def on_epoch_begin(self, run):
        pass

    def on_batch_end(self, run):
        pass

    def on_epoch_end(self, run):
        pass

    def on_train_end(self, run):
        pass


def check_hooks(callbacks):
    """Refuse, before any training, a callback whose hooks do not take the run alone.

    Raises ``TypeError`` naming the callback and the hook, e.g. for the older
    form ``on_epoch_end(self, net, epoch, history)``.
    """
    for callback in callbacks:
        for hook in HOOKS:
            method = getattr(callback, hook, None)
            if method is None:
                raise TypeError(f"{type(callback).__name__} has no {hook}(run): subclass nnscratch.Callback")
            try:
                inspect.signature(method).bind(None)
            except TypeError:
                raise TypeError(
                    f"{type(callback).__name__}.{hook}{inspect.signature(method)}: a hook takes the "
                    f"training run alone, {hook}(self, run); read run.net, run.epoch, run.batch, "
                    f"run.loss, run.history, run.optimizer from it") from None


class _Monitor(Callback):
    """Tracks the best value of one history record (``"val_loss"``, ``"val_accuracy"``...)."""

    def __init__(self, monitor="val_loss", mode="auto", min_delta=0.0):
        if mode not in ("auto", "min", "max"):
            raise ValueError(f"mode must be 'auto', 'min' or 'max', got {mode!r}")
        self.monitor = monitor
        self.mode = mode if mode != "auto" else ("max" if "acc" in monitor else "min")
        self.min_delta = abs(float(min_delta))
        self.best = None
        self.best_epoch = None

    def on_train_begin(self, run):
        history = run.history
        if self.monitor not in history:
            raise ValueError(f"cannot monitor {self.monitor!r}: history records {sorted(history)}")
        if self.monitor.startswith("val_") and not history.has_validation:
            raise ValueError(f"cannot monitor {self.monitor!r} without validation data: pass validation_data or validation_split to fit")
        self.best, self.best_epoch = None, None

    def _improved(self, history, epoch):
        values = history[self.monitor]
        if not values:
            raise ValueError(f"{self.monitor!r} has no values: pass validation_data or validation_split to fit to monitor it")
        value = values[-1]
        better = (self.best is None
                  or (self.mode == "min" and value < self.best - self.min_delta)
                  or (self.mode == "max" and value > self.best + self.min_delta))
        if better:
            self.best, self.best_epoch = value, epoch
        return better


class EarlyStopping(_Monitor):
    """Stop when ``monitor`` has not improved for ``patience`` epochs.

    With ``restore_best_weights`` (default) the network ends with the weights
    of its best epoch, not its last.
    """

    def __init__(self, monitor="val_loss", patience=5, min_delta=0.0, mode="auto", restore_best_weights=True):
        super().__init__(monitor, mode, min_delta)
        if int(patience) != patience or patience < 0:
            raise ValueError(f"patience must be a non-negative integer, got {patience!r}")
        self.patience = int(patience)
        self.restore_best_weights = restore_best_weights
        self.stopped_epoch = None

    def on_train_begin(self, run):
        super().on_train_begin(run)
        self.wait, self.best_weights, self.stopped_epoch = 0, None, None

    def on_epoch_end(self, run):
        if self._improved(run.history, run.epoch):
            self.wait = 0
            if self.restore_best_weights:
                self.best_weights = run.net.state_dict()   # parameters and BatchNorm statistics
            return
        self.wait += 1
        if self.wait >= self.patience:
            self.stopped_epoch = run.epoch
            run.stop()

    def on_train_end(self, run):
        if self.restore_best_weights and self.best_weights is not None:
            run.net.load_state_dict(self.best_weights)


class ModelCheckpoint(_Monitor):
    """Save the network to ``path`` whenever ``monitor`` improves (or every
    epoch with ``save_best_only=False``)."""

    def __init__(self, path, monitor="val_loss", save_best_only=True, mode="auto"):
        super().__init__(monitor, mode)
        self.path = path
        self.save_best_only = save_best_only

    def on_epoch_end(self, run):
        if self._improved(run.history, run.epoch) or not self.save_best_only:
            run.net.save(self.path)


class CSVLogger(Callback):
    """Write the history to a CSV file, one row per epoch, as Keras' ``CSVLogger`` does.

    The header is ``epoch`` (from 1) and the history's per-epoch records
    (``History.columns()``: loss, accuracy, val_loss and val_accuracy with
    validation data, time, lr, and lists a callback before this one filled),
    fixed at the first epoch's end. Each row is written and flushed when its
    epoch ends, so an interrupted or diverged run keeps the rows it finished;
    the epoch that Ctrl-C cut short is written when training ends.

    Parameters
    ----------
    path : str or os.PathLike; parent folders are created
    append : bool
        False (default): start a new file. True: add rows to an existing
        file, writing the header only if the file is new or empty.

    Examples
    --------
    >>> net.fit(X, y, epochs=20, callbacks=[CSVLogger("runs/mnist/log.csv")])  # doctest: +SKIP
    """

    def __init__(self, path, append=False):
        self.path = os.fspath(path)
        self.append = append
        self.columns = None
        self._rows_written = 0

    def on_train_begin(self, run):
        folder = os.path.dirname(self.path)
        if folder:
            os.makedirs(folder, exist_ok=True)
        if not self.append:
            open(self.path, "w").close()  # a new run starts a new file
        self.columns, self._rows_written = None, 0

    def on_epoch_end(self, run):
        self._write_new_rows(run.history)

    def on_train_end(self, run):
        self._write_new_rows(run.history)

    def _write_new_rows(self, history):
        if self._rows_written == history.epochs:
            return
        with open(self.path, "a", newline="") as f:  # opened per epoch: each row is on disk at once
            writer = csv.writer(f, lineterminator="\n")
            if self.columns is None:
                self.columns = history.columns()
                if f.tell() == 0:
                    writer.writerow(["epoch"] + self.columns)
            for i in range(self._rows_written, history.epochs):
                writer.writerow([i + 1] + [_cell(history[key], i) for key in self.columns])
        self._rows_written = history.epochs


def _cell(values, i):
    """``values[i]`` for a CSV cell: numbers at full precision, an empty cell where a record is short."""
    if i >= len(values):
        return ""
    value = values[i]
    return value.item() if isinstance(value, np.generic) else value  # np.float32(0.5) -> 0.5
