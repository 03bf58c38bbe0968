"""What steers a training run: learning-rate schedules, early stopping,
checkpoints, L2 weight decay and gradient clipping.

Expected values come from formulas written here (PyTorch's documented
schedules and clipping, SGD on the cost plus (λ/2)‖W‖² differentiated by
hand), not from the library's output. Validation losses are scripted by a
callback placed before the monitor, so the epochs that improve are known.
"""
import math

import numpy as np
import pytest

from nnscratch import (SGD, Callback, CosineAnnealingLR, EarlyStopping, ExponentialLR, ModelCheckpoint,
                       Network, StepLR)

LR = 0.1


def regression_data(n=32, d=4, k=2, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, d))
    T = X @ rng.standard_normal((d, k)) + 0.1 * rng.standard_normal((n, k))
    return X, T


def linear_net(d=4, k=2, seed=0, dtype=np.float64):
    """One fully connected layer and the quadratic cost C = (1/N) Σ ½‖a - t‖²."""
    net = Network(d, cost="quadratic", seed=seed, dtype=dtype)
    net.add_fc_layer(k, init="normal")
    net.layers[0].b.data[...] = np.random.default_rng(seed + 100).standard_normal(k)  # biases not zero
    return net


def mlp(d=4, k=2, seed=0):
    net = Network(d, cost="quadratic", seed=seed, dtype=np.float64)
    net.add_fc_layer(8)
    net.add_tanh_layer()
    net.add_fc_layer(k)
    return net


def weights(net):
    return [p.data.copy() for p in net.parameters()]


def same_weights(a, b):
    return len(a) == len(b) and all(np.array_equal(x, y) for x, y in zip(a, b))


class Snapshots(Callback):
    """Copies every parameter at the end of each epoch: snaps[e] after epoch e."""

    def __init__(self):
        self.snaps = {}

    def on_epoch_end(self, run):
        self.snaps[run.epoch] = weights(run.net)


class ScriptedValLoss(Callback):
    """Overwrites this epoch's history[key] with a scripted value; must come
    before the monitoring callback in the list."""

    def __init__(self, values, key="val_loss"):
        self.values, self.key = list(values), key

    def on_epoch_end(self, run):
        run.history[self.key][-1] = self.values[run.epoch - 1]


# -- learning-rate schedules ------------------------------------------------------------
class LrProbe(Callback):
    """Records the optimizer's lr at every batch, and checks the step used it:
    plain SGD moves each parameter by exactly lr · grad."""

    def __init__(self):
        self.lrs, self.max_step_error = {}, 0.0

    def on_epoch_begin(self, run):
        self.before = weights(run.net)

    def on_batch_end(self, run):
        lr = run.optimizer.lr
        self.lrs.setdefault(run.epoch, set()).add(lr)
        for p, old in zip(run.net.parameters(), self.before):
            error = float(np.max(np.abs((old - p.data) - lr * p.grad)))
            self.max_step_error = max(self.max_step_error, error)
        self.before = weights(run.net)


SCHEDULES = [
    (lambda: StepLR(step_size=2, gamma=0.5), lambda e: LR * 0.5 ** (e // 2)),
    (lambda: ExponentialLR(0.9), lambda e: LR * 0.9 ** e),
    (lambda: CosineAnnealingLR(T_max=4, eta_min=0.01),
     lambda e: 0.01 + (LR - 0.01) * (1 + math.cos(math.pi * e / 4)) / 2),
]


@pytest.mark.parametrize("make,formula", SCHEDULES, ids=["step", "exponential", "cosine"])
def test_schedule_sets_the_lr_of_each_epoch(make, formula):
    X, T = regression_data()
    probe = LrProbe()
    history = linear_net().fit(X, T, epochs=5, batch_size=8, optimizer=SGD(lr=LR),
                               callbacks=[make(), probe], verbose=0)
    expected = [formula(e) for e in range(5)]  # e = 0 for the first epoch
    np.testing.assert_allclose(history["lr"], expected, rtol=1e-12)
    assert [probe.lrs[e] for e in range(1, 6)] == [{lr} for lr in history["lr"]]
    assert probe.max_step_error < 1e-12


def test_schedule_values_spot_check():
    """The formulas above, at a few epochs, as numbers."""
    X, T = regression_data()
    h = linear_net().fit(X, T, epochs=5, batch_size=32, optimizer=SGD(lr=LR),
                         callbacks=[StepLR(2, 0.5)], verbose=0)
    np.testing.assert_allclose(h["lr"], [0.1, 0.1, 0.05, 0.05, 0.025], rtol=1e-12)
    h = linear_net().fit(X, T, epochs=5, batch_size=32, optimizer=SGD(lr=LR),
                         callbacks=[CosineAnnealingLR(4, 0.01)], verbose=0)
    np.testing.assert_allclose(h["lr"][0], 0.1, rtol=1e-12)
    np.testing.assert_allclose(h["lr"][2], 0.055, rtol=1e-12)
    np.testing.assert_allclose(h["lr"][4], 0.01, rtol=1e-12)


def test_no_schedule_keeps_the_lr():
    X, T = regression_data()
    h = linear_net().fit(X, T, epochs=3, batch_size=8, optimizer=SGD(lr=LR), verbose=0)
    assert h["lr"] == [LR] * 3


# -- early stopping --------------------------------------------------------------------------
def run_with(callbacks, epochs=10, validation=True, **fit_kw):
    X, T = regression_data()
    net = mlp()
    val = (X[:8], T[:8]) if validation else None
    history = net.fit(X, T, epochs=epochs, batch_size=8, optimizer=SGD(lr=0.05), validation_data=val,
                      callbacks=callbacks, verbose=0, **fit_kw)
    return net, history


def test_early_stopping_stops_after_patience_and_restores_the_best_weights():
    script = [1.0, 0.8, 0.9, 0.95, 0.97, 0.99, 0.5, 0.4]
    snaps, stop = Snapshots(), EarlyStopping(patience=3)
    net, history = run_with([ScriptedValLoss(script), snaps, stop])
    # best at epoch 2; epochs 3, 4, 5 do not improve: stop after epoch 5
    assert history.epochs == 5
    assert history["val_loss"] == script[:5]
    assert stop.stopped_epoch == 5 and stop.best_epoch == 2
    assert not same_weights(snaps.snaps[5], snaps.snaps[2])  # training did move the weights
    assert same_weights(weights(net), snaps.snaps[2])


def test_early_stopping_restores_the_best_epoch_even_without_stopping_early():
    snaps, stop = Snapshots(), EarlyStopping(patience=5)
    net, history = run_with([ScriptedValLoss([1.0, 0.6, 0.7, 0.8]), snaps, stop], epochs=4)
    assert history.epochs == 4 and stop.stopped_epoch is None
    assert same_weights(weights(net), snaps.snaps[2])


class OutputSnapshots(Callback):
    """The network's evaluation-mode outputs on fixed inputs at the end of each epoch."""

    def __init__(self, X):
        self.X, self.outputs, self.running = X, {}, {}

    def on_epoch_end(self, run):
        self.outputs[run.epoch] = run.net.predict_proba(self.X)
        self.running[run.epoch] = [(l.running_mean.copy(), l.running_var.copy())
                                   for l in run.net.layers if hasattr(l, "running_mean")]


def test_early_stopping_restores_batchnorm_running_statistics_too():
    X, T = regression_data()
    net = Network(4, cost="quadratic", seed=0, dtype=np.float64)
    net.add_fc_layer(8)
    net.add_batchnorm_layer()
    net.add_relu_layer()
    net.add_fc_layer(2)
    outs = OutputSnapshots(X)
    net.fit(X, T, epochs=10, batch_size=8, optimizer=SGD(lr=0.05), validation_data=(X[:8], T[:8]),
            callbacks=[ScriptedValLoss([1.0, 0.5, 0.9, 0.95, 0.97]), outs, EarlyStopping(patience=3)],
            verbose=0)
    bn = net.layers[1]
    np.testing.assert_array_equal(bn.running_mean, outs.running[2][0][0])
    np.testing.assert_array_equal(bn.running_var, outs.running[2][0][1])
    np.testing.assert_array_equal(net.predict_proba(X), outs.outputs[2])


def test_early_stopping_without_restoring_keeps_the_last_weights():
    snaps = Snapshots()
    net, history = run_with([ScriptedValLoss([1.0, 0.8, 0.9, 0.95, 0.97]), snaps,
                             EarlyStopping(patience=2, restore_best_weights=False)])
    assert history.epochs == 4
    assert same_weights(weights(net), snaps.snaps[4])


def test_early_stopping_min_delta():
    """An improvement smaller than min_delta does not count."""
    snaps, stop = Snapshots(), EarlyStopping(patience=2, min_delta=0.05)
    net, history = run_with([ScriptedValLoss([1.0, 0.97, 0.96, 0.5]), snaps, stop])
    assert history.epochs == 3 and stop.best_epoch == 1
    assert same_weights(weights(net), snaps.snaps[1])


def test_early_stopping_on_accuracy_maximizes():
    snaps, stop = Snapshots(), EarlyStopping(monitor="val_accuracy", patience=2)
    net, history = run_with([ScriptedValLoss([0.5, 0.6, 0.55, 0.58, 0.9], key="val_accuracy"), snaps, stop])
    assert history.epochs == 4 and stop.best_epoch == 2
    assert same_weights(weights(net), snaps.snaps[2])


def test_early_stopping_runs_every_epoch_while_improving():
    stop = EarlyStopping(patience=1)
    _, history = run_with([ScriptedValLoss([1.0, 0.9, 0.8, 0.7]), stop], epochs=4)
    assert history.epochs == 4 and stop.stopped_epoch is None and stop.best_epoch == 4


def test_monitoring_validation_without_validation_data_is_a_clear_error(tmp_path):
    with pytest.raises(ValueError, match="validation_data"):
        run_with([EarlyStopping()], validation=False)
    with pytest.raises(ValueError, match="validation_data"):
        run_with([ModelCheckpoint(tmp_path / "unused.pickle")], validation=False)
    assert not (tmp_path / "unused.pickle").exists()


def test_monitoring_an_unknown_key_is_a_clear_error_before_training():
    X, T = regression_data()
    net = mlp()
    before = weights(net)
    with pytest.raises(ValueError, match="val_los.*val_loss"):
        net.fit(X, T, epochs=2, optimizer=SGD(lr=0.05), validation_data=(X, T),
                callbacks=[EarlyStopping(monitor="val_los")], verbose=0)
    assert same_weights(weights(net), before)


# -- checkpoints -------------------------------------------------------------------------------
class CheckpointProbe(Callback):
    """After the checkpoint callback: records whether the file was (re)written
    this epoch and what it holds, then deletes it."""

    def __init__(self, path):
        self.path, self.saved = path, {}

    def on_epoch_end(self, run):
        if self.path.exists():
            self.saved[run.epoch] = weights(Network.load(self.path))
            self.path.unlink()


def test_checkpoint_saves_only_on_improvement(tmp_path):
    path = tmp_path / "ckpt" / "best.pickle"
    snaps, probe = Snapshots(), CheckpointProbe(path)
    run_with([ScriptedValLoss([1.0, 0.8, 0.9, 0.7, 0.75, 0.72]), snaps, ModelCheckpoint(path), probe],
             epochs=6)
    assert sorted(probe.saved) == [1, 2, 4]
    for epoch, saved in probe.saved.items():
        assert same_weights(saved, snaps.snaps[epoch])


def test_checkpoint_file_holds_the_best_epoch(tmp_path):
    path = tmp_path / "best.pickle"
    snaps = Snapshots()
    net, _ = run_with([ScriptedValLoss([1.0, 0.8, 0.9, 0.7, 0.75, 0.72]), snaps, ModelCheckpoint(path)],
                      epochs=6)
    best = Network.load(path)
    assert same_weights(weights(best), snaps.snaps[4])
    assert not same_weights(weights(best), weights(net))  # the last epoch is not the best one
    X, _ = regression_data()
    net_at_4 = mlp()
    for p, w in zip(net_at_4.parameters(), snaps.snaps[4]):
        p.data[...] = w
    np.testing.assert_array_equal(best.predict_proba(X), net_at_4.predict_proba(X))


def test_checkpoint_every_epoch_without_save_best_only(tmp_path):
    path = tmp_path / "every.pickle"
    snaps, probe = Snapshots(), CheckpointProbe(path)
    run_with([ScriptedValLoss([1.0, 1.1, 1.2]), snaps, ModelCheckpoint(path, save_best_only=False), probe],
             epochs=3)
    assert sorted(probe.saved) == [1, 2, 3]
    for epoch, saved in probe.saved.items():
        assert same_weights(saved, snaps.snaps[epoch])


# -- L2 weight decay -----------------------------------------------------------------------------
def quadratic_cost(W, b, X, T):
    R = X @ W.T + b - T
    return 0.5 * np.sum(R * R) / len(X)


def sgd_step_on_penalized_cost(W, b, X, T, lr, lam, decay_bias=False):
    """Gradient of C + (λ/2)‖W‖² (+ (λ/2)‖b‖² with decay_bias), by hand, and one SGD step."""
    R = X @ W.T + b - T                      # (N, K)
    gW = R.T @ X / len(X) + lam * W          # (K, D)
    gb = R.sum(axis=0) / len(X) + (lam * b if decay_bias else 0.0)
    return W - lr * gW, b - lr * gb


@pytest.mark.parametrize("decay_all", [False, True])
def test_weight_decay_is_sgd_on_the_cost_plus_the_l2_penalty(decay_all):
    X, T = regression_data(n=16)
    lam, lr = 0.3, 0.05
    net = linear_net()
    W0, b0 = net.layers[0].W.data.copy(), net.layers[0].b.data.copy()
    history = net.fit(X, T, epochs=1, batch_size=16, shuffle=False, verbose=0,
                      optimizer=SGD(lr=lr, weight_decay=lam, decay_all=decay_all))
    W1, b1 = sgd_step_on_penalized_cost(W0, b0, X, T, lr, lam, decay_bias=decay_all)
    np.testing.assert_allclose(net.layers[0].W.data, W1, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(net.layers[0].b.data, b1, rtol=1e-12, atol=1e-14)
    # the reported loss: the batch's cost (before the step) plus the penalty at the epoch's end
    penalty = 0.5 * lam * (np.sum(W1 * W1) + (np.sum(b1 * b1) if decay_all else 0.0))
    np.testing.assert_allclose(history["loss"][0], quadratic_cost(W0, b0, X, T) + penalty, rtol=1e-12)


def test_weight_decay_leaves_biases_alone_by_default():
    X, T = regression_data(n=16)
    plain, decayed = linear_net(), linear_net()
    plain.fit(X, T, epochs=1, batch_size=16, shuffle=False, verbose=0, optimizer=SGD(lr=0.05))
    decayed.fit(X, T, epochs=1, batch_size=16, shuffle=False, verbose=0,
                optimizer=SGD(lr=0.05, weight_decay=0.3))
    np.testing.assert_array_equal(decayed.layers[0].b.data, plain.layers[0].b.data)
    assert not np.allclose(decayed.layers[0].W.data, plain.layers[0].W.data)


def test_history_loss_over_several_batches_includes_the_penalty():
    """Mean of the batch costs (each at the weights it was computed with) + (λ/2)‖W‖² at the end."""
    X, T = regression_data(n=24)
    lam, lr = 0.2, 0.1
    net = linear_net()
    W, b = net.layers[0].W.data.copy(), net.layers[0].b.data.copy()
    history = net.fit(X, T, epochs=2, batch_size=8, shuffle=False, verbose=0,
                      optimizer=SGD(lr=lr, weight_decay=lam))
    for epoch in range(2):
        costs = []
        for start in range(0, 24, 8):
            Xb, Tb = X[start:start + 8], T[start:start + 8]
            costs.append(quadratic_cost(W, b, Xb, Tb))
            W, b = sgd_step_on_penalized_cost(W, b, Xb, Tb, lr, lam)
        expected = np.mean(costs) + 0.5 * lam * np.sum(W * W)
        np.testing.assert_allclose(history["loss"][epoch], expected, rtol=1e-12)
    np.testing.assert_allclose(net.layers[0].W.data, W, rtol=1e-12, atol=1e-14)


def test_history_loss_without_decay_has_no_penalty():
    X, T = regression_data(n=16)
    net = linear_net()
    W0, b0 = net.layers[0].W.data.copy(), net.layers[0].b.data.copy()
    history = net.fit(X, T, epochs=1, batch_size=16, verbose=0, optimizer=SGD(lr=0.05))
    np.testing.assert_allclose(history["loss"][0], quadratic_cost(W0, b0, X, T), rtol=1e-12)


# -- gradient clipping -----------------------------------------------------------------------------
def clip_scale(grads, max_norm):
    """torch.nn.utils.clip_grad_norm_: scale by max_norm / (total_norm + 1e-6) when that is < 1."""
    total = np.sqrt(sum(np.sum(g * g) for g in grads))
    return min(1.0, max_norm / (total + 1e-6)), total


@pytest.mark.parametrize("clip", [0.01, 0.5])
def test_clipping_one_step_matches_scaled_sgd(clip):
    X, T = regression_data(n=16)
    lr = 0.1
    net = linear_net()
    W0, b0 = net.layers[0].W.data.copy(), net.layers[0].b.data.copy()
    net.fit(X, T, epochs=1, batch_size=16, shuffle=False, verbose=0, optimizer=SGD(lr=lr, clip_norm=clip))
    R = X @ W0.T + b0 - T
    gW, gb = R.T @ X / len(X), R.mean(axis=0)
    scale, total = clip_scale([gW, gb], clip)
    assert total > clip  # the case clips
    np.testing.assert_allclose(net.layers[0].W.data, W0 - lr * scale * gW, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(net.layers[0].b.data, b0 - lr * scale * gb, rtol=1e-12, atol=1e-14)
    dW, db = W0 - net.layers[0].W.data, b0 - net.layers[0].b.data
    applied = np.sqrt(np.sum(dW * dW) + np.sum(db * db)) / lr
    assert applied <= clip * (1 + 1e-9)
    assert applied >= clip * 0.999


class ClipProbe(Callback):
    """Reads p.grad (the unclipped gradient) after each step and the step actually taken."""

    def __init__(self, lr, clip):
        self.lr, self.clip = lr, clip
        self.applied, self.raw, self.max_error = [], [], 0.0

    def on_epoch_begin(self, run):
        self.before = weights(run.net)

    def on_batch_end(self, run):
        grads = [p.grad for p in run.net.parameters()]
        scale, total = clip_scale(grads, self.clip)
        steps = [(old - p.data) / self.lr for p, old in zip(run.net.parameters(), self.before)]
        self.raw.append(total)
        self.applied.append(np.sqrt(sum(np.sum(s * s) for s in steps)))
        for s, g in zip(steps, grads):
            self.max_error = max(self.max_error, float(np.max(np.abs(s - scale * g))))
        self.before = weights(run.net)


def test_clipping_through_fit_bounds_every_applied_step():
    X, T = regression_data(n=40)
    lr, clip = 0.05, 0.2
    probe = ClipProbe(lr, clip)
    mlp().fit(X, T, epochs=3, batch_size=8, verbose=0, optimizer=SGD(lr=lr, clip_norm=clip),
              callbacks=[probe])
    assert len(probe.applied) == 15
    assert max(probe.applied) <= clip * (1 + 1e-9)
    assert any(r > clip for r in probe.raw)  # clipping was active
    assert probe.max_error < 1e-12


def test_large_clip_norm_changes_nothing():
    X, T = regression_data(n=40)
    a, b = mlp(), mlp()
    a.fit(X, T, epochs=2, batch_size=8, verbose=0, optimizer=SGD(lr=0.05))
    b.fit(X, T, epochs=2, batch_size=8, verbose=0, optimizer=SGD(lr=0.05, clip_norm=1e6))
    assert same_weights(weights(a), weights(b))
