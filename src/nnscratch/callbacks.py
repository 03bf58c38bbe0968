"""Callbacks: hooks into ``fit``, and what every long run wants: early
stopping, checkpoints and a log of its epochs.

During ``fit`` the network carries ``net.optimizer`` (the optimizer in use)
and ``net.stop_training`` (set it to True to end training after this epoch).
"""
import csv
import os

import numpy as np


class Callback:
    """Hooks called by ``fit``; override the ones you need."""

    def on_train_begin(self, net, history):
        pass

    def on_epoch_begin(self, net, epoch):
        pass

    def on_batch_end(self, net, epoch, batch, loss):
        pass

    def on_epoch_end(self, net, epoch, history):
        pass

    def on_train_end(self, net, history):
        pass


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

    def on_train_begin(self, net, history):
        if self.monitor not in history:
            raise ValueError(f"cannot monitor {self.monitor!r}: history records {sorted(history)}")
        if self.monitor.startswith("val_") and not history.has_validation:
            raise ValueError(f"cannot monitor {self.monitor!r} without validation_data: pass it to fit")
        self.best, self.best_epoch = None, None

    def _improved(self, history, epoch):
        values = history[self.monitor]
        if not values:
            raise ValueError(f"{self.monitor!r} has no values: pass validation_data to fit to monitor it")
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

    def on_train_begin(self, net, history):
        super().on_train_begin(net, history)
        self.wait, self.best_weights, self.stopped_epoch = 0, None, None

    def on_epoch_end(self, net, epoch, history):
        if self._improved(history, epoch):
            self.wait = 0
            if self.restore_best_weights:
                self.best_weights = net.state_dict()   # parameters and BatchNorm statistics
            return
        self.wait += 1
        if self.wait >= self.patience:
            self.stopped_epoch = epoch
            net.stop_training = True

    def on_train_end(self, net, history):
        if self.restore_best_weights and self.best_weights is not None:
            net.load_state_dict(self.best_weights)


class ModelCheckpoint(_Monitor):
    """Save the network to ``path`` whenever ``monitor`` improves (or every
    epoch with ``save_best_only=False``)."""

    def __init__(self, path, monitor="val_loss", save_best_only=True, mode="auto"):
        super().__init__(monitor, mode)
        self.path = path
        self.save_best_only = save_best_only

    def on_epoch_end(self, net, epoch, history):
        if self._improved(history, epoch) or not self.save_best_only:
            net.save(self.path)


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

    def on_train_begin(self, net, history):
        folder = os.path.dirname(self.path)
        if folder:
            os.makedirs(folder, exist_ok=True)
        if not self.append:
            open(self.path, "w").close()  # a new run starts a new file
        self.columns, self._rows_written = None, 0

    def on_epoch_end(self, net, epoch, history):
        self._write_new_rows(history)

    def on_train_end(self, net, history):
        self._write_new_rows(history)

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
