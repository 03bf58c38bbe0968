"""The training loop: mini-batches, history, callbacks, and what stops training.

``fit`` runs, per mini-batch: forward (training mode), cost, backward, one
optimizer step. It guards the run:

- labels are checked (length, range, shape) before the first batch;
- a non-finite cost stops training with ``TrainingDiverged`` naming the epoch
  and batch, and the network keeps the last weights whose cost was finite;
- Ctrl-C stops at the next batch boundary and returns the history so far.
"""
import math
import signal
import sys
import threading
import time

import numpy as np

from .callbacks import Callback
from .layers.base import shape_matches, shape_str
from .optimizers import SGD, get_optimizer


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


# -- targets ------------------------------------------------------------------
def classes_of(out):
    """Predicted class ids from outputs (N, ..., K): argmax over K, or ``> 0.5`` when K = 1."""
    return (out[..., 0] > 0.5).astype(np.int64) if out.shape[-1] == 1 else out.argmax(axis=-1)


def prepare_targets(net, y, n):
    """Check labels against the network and return ``(targets float, labels int)``.

    ``y`` may hold integer class ids, one per prediction ((N,) for an output
    (N, K), (N, T) for a sequence output (N, T, K)), or one-hot / real targets
    shaped like the output.
    """
    y = np.asarray(y)
    out_shape = net.output_shape
    k = out_shape[-1]
    if len(y) != n:
        raise ValueError(f"got {n} samples but {len(y)} labels")
    id_shape = (n,) + out_shape[:-1]
    is_ids = shape_matches(y.shape, id_shape)
    integral = np.issubdtype(y.dtype, np.integer) or (is_ids and k > 1 and np.all(np.mod(y, 1) == 0))
    if is_ids and integral:
        id_shape = y.shape
        y = y.astype(np.int64)
        classes = max(k, 2)
        if y.size and (y.min() < 0 or y.max() >= classes):
            raise ValueError(f"labels must be class ids in [0, {classes - 1}] for an output of "
                             f"shape {shape_str(out_shape)}, got values in [{y.min()}, {y.max()}]")
        if k == 1:
            return y.astype(net.dtype).reshape(id_shape + (1,)), y
        targets = np.zeros(id_shape + (k,), dtype=net.dtype)
        np.put_along_axis(targets, y[..., None], 1, axis=-1)
        return targets, y
    if y.ndim == 1 and out_shape == (1,):
        y = y.reshape(n, 1)
    if not shape_matches(y.shape[1:], out_shape):
        ids = "(N,)" if len(id_shape) == 1 else shape_str(id_shape[1:])
        raise ValueError(f"targets must be class ids of shape {ids} or shaped like the output "
                         f"{shape_str(out_shape)}, got {tuple(y.shape)}")
    targets = y.astype(net.dtype, copy=False)
    return targets, classes_of(targets)


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


def _progress(total, epoch, epochs, verbose):
    if verbose < 1:
        return None
    try:
        from tqdm import tqdm
    except ImportError:  # tqdm is in requirements.txt; train without a bar if it is missing
        return None
    return tqdm(total=total, desc=f"Epoch {epoch}/{epochs}", unit="batch", leave=False,
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


def _check_batchnorm_batches(net, n, batch_size):
    """A batch norm over (N, D) features cannot train on a last mini-batch of one sample."""
    if n % batch_size == 1 and any(layer.kind == "batchnorm" and len(layer.input_shape) == 1
                                   for layer in net.layers):
        raise ValueError(f"{n} samples in batches of {batch_size} leave a last batch of one, on which "
                         f"batch normalization cannot estimate a variance: choose another batch size")


def fit(net, X, y, epochs=1, batch_size=32, optimizer=None, validation_data=None, callbacks=(),
        shuffle=True, verbose=1):
    """Train ``net`` on ``(X, y)`` with mini-batches; returns a ``History``.

    Parameters
    ----------
    X : array (N, *input_shape)
    y : int array (N,) of class ids, or (N, K) one-hot / real targets
    epochs, batch_size : int
    optimizer : Optimizer or str, default ``SGD(lr=0.01)``
    validation_data : (X_val, y_val), optional; evaluated after each epoch
    callbacks : list of ``Callback``
    shuffle : bool; reshuffle every epoch with the network's generator
    verbose : 0 silent, 1 a progress bar and one line per epoch, 2 the bar only

    The reported training loss and accuracy are the means over the epoch's
    mini-batches (computed on the fly, as the weights change), plus the
    optimizer's L2 penalty when weight decay is on.
    """
    if int(epochs) != epochs or epochs < 1 or int(batch_size) != batch_size or batch_size < 1:
        raise ValueError(f"epochs and batch_size must be positive integers, got {epochs!r}, {batch_size!r}")
    X = net._as_batch(X)
    targets, labels = prepare_targets(net, y, len(X))
    if validation_data is not None:
        X_val = net._as_batch(validation_data[0])
        val_targets, _ = prepare_targets(net, validation_data[1], len(X_val))
    optimizer = SGD(lr=0.01) if optimizer is None else get_optimizer(optimizer)
    params = net.parameters()
    _check_batchnorm_batches(net, len(X), batch_size)
    history = History()
    history.has_validation = validation_data is not None
    net.history = history
    net.optimizer = optimizer
    net.stop_training = False
    n = len(X)
    n_batches = math.ceil(n / batch_size)
    layers, cost = net.layers, net.cost
    # With a fused output (softmax + cross-entropy) the gradient enters below the output layer.
    output_gradient = cost.fused_gradient if net.fused_output else cost.gradient
    backward_layers = layers[-2::-1] if net.fused_output else layers[::-1]
    for cb in callbacks:
        cb.on_train_begin(net, history)
    with _StopOnInterrupt() as interrupt:
        for epoch in range(1, int(epochs) + 1):
            for cb in callbacks:
                cb.on_epoch_begin(net, epoch)
            order = net.rng.permutation(n) if shuffle else np.arange(n)
            bar = _progress(n_batches, epoch, epochs, verbose)
            loss_sum, correct, seen, predictions = 0.0, 0, 0, 0
            start = time.perf_counter()
            for b in range(n_batches):
                idx = order[b * batch_size:(b + 1) * batch_size]
                out = X[idx]
                for layer in layers:
                    out = layer.forward(out, True)
                batch_targets = targets[idx]
                loss = cost.value(out, batch_targets)
                if not math.isfinite(loss):
                    if bar is not None:
                        bar.close()
                    _diverged(optimizer, epoch, b + 1, loss)
                grad = output_gradient(out, batch_targets)
                for layer in backward_layers:
                    grad = layer.backward(grad)
                optimizer.step(params)
                loss_sum += loss * len(idx)
                batch_labels = labels[idx]
                correct += int(np.count_nonzero(classes_of(out) == batch_labels))
                predictions += batch_labels.size
                seen += len(idx)
                if bar is not None:
                    bar.update()
                for cb in callbacks:
                    cb.on_batch_end(net, epoch, b + 1, loss)
                if interrupt.requested:
                    break
            elapsed = time.perf_counter() - start
            if bar is not None:
                bar.close()
            history["loss"].append(loss_sum / max(seen, 1) + optimizer.penalty(params))
            history["accuracy"].append(correct / max(predictions, 1))
            history["time"].append(elapsed)
            history["lr"].append(optimizer.lr)
            if validation_data is not None:
                v = net.evaluate(X_val, val_targets)
                history["val_loss"].append(v["loss"])
                history["val_accuracy"].append(v["accuracy"])
            if interrupt.requested:
                history.interrupted = True
                break
            if verbose == 1:
                print(_epoch_line(history, epoch, epochs))
            for cb in callbacks:
                cb.on_epoch_end(net, epoch, history)
            if net.stop_training:
                break
    for cb in callbacks:
        cb.on_train_end(net, history)
    return history


def _epoch_line(history, epoch, epochs):
    line = (f"Epoch {epoch}/{epochs}: loss {history['loss'][-1]:.4f} "
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


class _SeedEpochPrinter(Callback):
    """Prints the seed's line, epochs counted from 0 as the seed did:
    ``Epoch 3: Test_data: 9609 / 10000 Train Cost = ... Test Cost = ...``."""

    def __init__(self, n_test):
        self.n_test = n_test

    def on_epoch_end(self, net, epoch, history):
        if self.n_test:
            correct = round(history["val_accuracy"][-1] * self.n_test)
            print(f"Epoch {epoch - 1}: Test_data: {correct} / {self.n_test} Train Cost = "
                  f"{history['loss'][-1]:.6f} Test Cost = {history['val_loss'][-1]:.6f}")
        else:
            print(f"Epoch {epoch - 1}: Train Cost = {history['loss'][-1]:.6f}")


def seed_sgd(net, training_data, epochs, mini_batch_size, eta, test_data=None, verbose=1):
    """``Network.stochastic_gradient_descent``: plain SGD on the seed's tuple lists."""
    X, Y = tuples_to_arrays(training_data)
    validation = tuples_to_arrays(test_data) if test_data else None
    printer = _SeedEpochPrinter(len(test_data) if test_data else 0)
    return fit(net, X, Y, epochs=epochs, batch_size=mini_batch_size, optimizer=SGD(lr=eta),
               validation_data=validation, callbacks=[printer], verbose=2 if verbose else 0)
