"""One training step, and the training state kept off the model.

``net.train_step(X, targets)`` is the only place forward (training mode),
cost and backward happen; ``fit`` runs a ``TrainingRun`` whose callbacks and
schedules change the run, not the network; the optimizer owns its buffers
and updates each parameter's one array in place.
"""
import pickle

import numpy as np
import pytest

from nnscratch import (SGD, Adam, Callback, CrossEntropyLogits, Network, StepLR, TrainingDiverged,
                       make_clusters)
from nnscratch.layers import Parameter, Softmax
from nnscratch.training import TrainingRun, prepare_targets

from conftest import assert_rows_small, randn


def mlp(cost="cross_entropy", softmax=True, seed=0, dtype=np.float64):
    net = Network(6, cost=cost, seed=seed, dtype=dtype)
    net.add_fc_layer(8)
    net.add_tanh_layer()
    net.add_fc_layer(3)
    if softmax:
        net.add_softmax_layer()
    return net


def batch(net, n=10, seed=0):
    X = net._checked_batch(randn((n, 6), seed))
    targets, _ = prepare_targets(net, np.arange(n) % 3, n)
    return X, targets


def grads(net):
    return [p.grad.copy() for p in net.parameters()]


def weights(net):
    return [p.data.copy() for p in net.parameters()]


# -- the training step ------------------------------------------------------------------
def test_train_step_returns_the_cost_and_fills_every_gradient_without_stepping():
    net, by_hand = mlp(cost="quadratic", softmax=False), mlp(cost="quadratic", softmax=False)
    X, targets = batch(net)
    before = weights(net)
    loss = net.train_step(X, targets)
    # forward in training mode, the cost, its gradient back through every layer, by hand
    out = by_hand.forward(X, training=True)
    assert loss == by_hand.cost.value(out, targets)
    grad = by_hand.cost.gradient(out, targets)
    for layer in reversed(by_hand.layers):
        grad = layer.backward(grad)
    assert all(np.array_equal(a, b) for a, b in zip(grads(net), grads(by_hand)))
    assert all(np.array_equal(a, b) for a, b in zip(before, weights(net)))


def test_the_fused_output_layer_is_not_backpropagated_and_the_gradient_enters_below_it():
    net = mlp()
    X, targets = batch(net)
    softmax = net.layers[-1]
    calls = []
    softmax.backward = lambda dy: calls.append(dy)
    assert net.fused_output
    net.train_step(X, targets, return_output=True)
    assert calls == []
    # and it equals the chain through the softmax's own backward
    chained = mlp()
    out = chained.forward(X, training=True)
    grad = chained.cost.gradient(out, targets)
    for layer in reversed(chained.layers):
        grad = layer.backward(grad)
    for a, b in zip(grads(net), grads(chained)):
        np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-14)


def test_the_seed_function_pair_fuses_with_the_softmax_as_before():
    from nnscratch import cross_entropy_cost, cross_entropy_cost_prime_SM
    net = Network(6, cross_entropy_cost, cross_entropy_cost_prime_SM, dtype=np.float64)
    net.add_fc_layer(3)
    net.add_softmax_layer()
    assert net.fused_output


def test_a_subclass_of_softmax_fuses_too_and_no_kind_string_decides():
    class MySoftmax(Softmax):
        kind = "my_softmax"

    net = Network(6, dtype=np.float64)
    net.add_fc_layer(3)
    net.add(MySoftmax())
    assert net.fused_output


@pytest.mark.filterwarnings("ignore:overflow:RuntimeWarning", "ignore:invalid value:RuntimeWarning")
def test_a_non_finite_cost_is_returned_and_nothing_is_backpropagated():
    net = mlp(cost="quadratic", softmax=False)
    X, targets = batch(net)
    for p in net.parameters():
        p.grad[...] = 7.0
    assert not np.isfinite(net.train_step(X, targets * 1e300))  # ½(a - t)² overflows
    assert all(np.all(p.grad == 7.0) for p in net.parameters())


def test_fit_is_train_step_then_the_optimizer_step_bit_for_bit():
    X, y = randn((24, 6), 1), np.arange(24) % 3
    fitted = mlp()
    fitted.fit(X, y, epochs=1, batch_size=8, shuffle=False, optimizer=Adam(lr=0.01), verbose=0)
    by_hand, opt = mlp(), Adam(lr=0.01)
    targets, _ = prepare_targets(by_hand, y, len(y))
    for start in range(0, 24, 8):
        by_hand.train_step(by_hand._checked_batch(X[start:start + 8]), targets[start:start + 8])
        opt.step(by_hand.parameters())
    assert all(np.array_equal(a, b) for a, b in zip(weights(fitted), weights(by_hand)))


# -- cross-entropy on logits --------------------------------------------------------------
def test_a_logits_network_has_the_softmax_networks_cost_and_gradients():
    """fc -> softmax with cross-entropy and fc with cross-entropy on logits, same weights:
    the same loss and the same gradients, (softmax(z) - t)/N entering below the softmax."""
    with_softmax, on_logits = mlp(), mlp(cost="cross_entropy_logits", softmax=False)
    on_logits.load_state_dict(with_softmax.state_dict())
    assert isinstance(on_logits.cost, CrossEntropyLogits) and not on_logits.fused_output
    X, targets = batch(with_softmax)
    assert on_logits.train_step(X, targets) == pytest.approx(with_softmax.train_step(X, targets), rel=1e-12)
    for a, b in zip(grads(on_logits), grads(with_softmax)):
        np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-14)


def test_a_logits_network_predicts_probabilities_and_the_argmax_class():
    X, y, X_test, y_test, _ = make_clusters(n_samples=600, seed=0)
    net = Network(2, cost="cross_entropy_logits", seed=0)
    net.add_fc_layer(16)
    net.add_relu_layer()
    net.add_fc_layer(3)
    net.fit(X, y, epochs=20, batch_size=16, optimizer=Adam(lr=0.01), verbose=0)
    logits = net.forward(X_test)
    proba = net.predict_proba(X_test)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, rtol=1e-5)
    np.testing.assert_allclose(proba, np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True), rtol=1e-5)
    np.testing.assert_array_equal(net.predict(X_test), logits.argmax(axis=1))
    assert net.evaluate(X_test, y_test)["accuracy"] > 0.9


def test_a_per_time_step_logits_network_checks_its_gradients():
    """(N, T, K) logits: the cost averages over the N·T predictions."""
    net = Network((5, 4), cost="cross_entropy_logits", seed=0, dtype=np.float64)
    net.add_rnn_layer(6, return_sequences=True)
    net.add_fc_layer(3)
    X, y = randn((4, 5, 4), 2), np.arange(20).reshape(4, 5) % 3
    rows = net.check_gradients(X, y, verbose=False)
    assert {r["layer"] for r in rows} == {"rnn1", "fc1"}
    assert_rows_small(rows)


# -- the training run -----------------------------------------------------------------------
class Recorder(Callback):
    """What each hook sees of the run: (hook, epoch, batch)."""

    def __init__(self, stop_after=None):
        self.seen, self.runs, self.stop_after = [], set(), stop_after

    def _record(self, hook, run):
        self.seen.append((hook, run.epoch, run.batch))
        self.runs.add(id(run))

    def on_train_begin(self, run):
        self._record("train_begin", run)

    def on_epoch_begin(self, run):
        self._record("epoch_begin", run)

    def on_batch_end(self, run):
        self._record("batch_end", run)
        assert np.isfinite(run.loss)

    def on_epoch_end(self, run):
        self._record("epoch_end", run)
        if run.epoch == self.stop_after:
            run.stop()

    def on_train_end(self, run):
        self._record("train_end", run)
        assert isinstance(run, TrainingRun) and run.net.history is run.history


def test_callbacks_receive_one_run_that_counts_epochs_and_batches_and_stops_on_request():
    X, y = randn((20, 6), 3), np.arange(20) % 3
    recorder = Recorder(stop_after=2)
    net = mlp()
    history = net.fit(X, y, epochs=5, batch_size=8, callbacks=[recorder], verbose=0)
    epoch = [("epoch_begin", 0), ("batch_end", 1), ("batch_end", 2), ("batch_end", 3), ("epoch_end", 3)]
    expected = ([("train_begin", 0, 0)] + [(h, e, b) for e in (1, 2) for h, b in epoch]
                + [("train_end", 2, 3)])
    assert recorder.seen == expected
    assert len(recorder.runs) == 1 and history.epochs == 2 and net.history is history


def test_training_state_stays_off_the_network():
    X, y = randn((20, 6), 4), np.arange(20) % 3
    net = mlp()
    before = set(vars(net))
    net.fit(X, y, epochs=3, batch_size=8, optimizer=SGD(lr=0.1), callbacks=[StepLR(1, 0.5)], verbose=0)
    assert set(vars(net)) - before <= {"history"}
    assert not hasattr(net, "optimizer") and not hasattr(net, "stop_training")


def test_a_schedule_changes_the_runs_optimizer():
    X, y = randn((20, 6), 5), np.arange(20) % 3
    opt = SGD(lr=0.1)
    history = mlp().fit(X, y, epochs=3, batch_size=8, optimizer=opt, callbacks=[StepLR(1, 0.5)], verbose=0)
    assert history["lr"] == [0.1, 0.05, 0.025] and opt.lr == 0.025


def test_a_callback_with_the_old_hook_signature_is_refused_before_any_training():
    class OldStyle(Callback):
        def on_epoch_end(self, net, epoch, history):
            pass

    net = mlp()
    before = weights(net)
    message = r"OldStyle.on_epoch_end\(net, epoch, history\).*on_epoch_end\(self, run\)"
    with pytest.raises(TypeError, match=message):
        net.fit(randn((8, 6), 6), np.arange(8) % 3, callbacks=[OldStyle()], verbose=0)
    assert all(np.array_equal(a, b) for a, b in zip(before, weights(net)))


# -- the optimizer owns its buffers; a parameter is one array ----------------------------------
@pytest.mark.parametrize("make", [lambda: SGD(lr=0.1), lambda: SGD(lr=0.1, momentum=0.9),
                                  lambda: Adam(lr=0.01)], ids=["sgd", "momentum", "adam"])
def test_a_reference_to_a_weight_array_sees_every_step(make):
    net = mlp()
    W = net.layers[0].W.data
    held = W.copy()
    net.fit(randn((16, 6), 7), np.arange(16) % 3, epochs=2, batch_size=8, optimizer=make(), verbose=0)
    assert net.layers[0].W.data is W
    assert not np.array_equal(W, held)       # the held array holds the new values
    opt = make()
    params = net.parameters()
    for p in params:
        p.grad[...] = 1.0
    arrays = [p.data for p in params]
    opt.step(params)
    opt.undo_last_step()
    assert all(p.data is a for p, a in zip(params, arrays))


def test_a_parameter_holds_its_values_and_gradient_only():
    assert set(Parameter.__slots__) == {"data", "grad", "name", "decay"}
    p = Parameter(np.arange(3.0), "W")
    Adam(lr=0.1).step([p])
    assert not hasattr(p, "spare")


def test_an_old_pickled_parameter_loads():
    """Pickles written before the optimizer owned its buffers hold data, name and decay
    (the spare buffer was never stored)."""
    old = Parameter.__new__(Parameter)
    old.__setstate__({"data": np.arange(4.0), "name": "W", "decay": True})
    assert old.name == "W" and np.array_equal(old.data, np.arange(4.0))
    assert np.array_equal(old.grad, np.zeros(4))
    again = pickle.loads(pickle.dumps(old))
    assert np.array_equal(again.data, old.data) and again.decay


@pytest.mark.filterwarnings("ignore:overflow:RuntimeWarning", "ignore:invalid value:RuntimeWarning")
def test_a_divergence_keeps_the_last_finite_cost_weights_in_the_same_arrays():
    net = mlp(cost="quadratic", softmax=False)
    arrays = [p.data for p in net.parameters()]
    with pytest.raises(TrainingDiverged):
        net.fit(randn((40, 6), 8) * 100, randn((40, 3), 9), epochs=20, batch_size=10,
                optimizer=SGD(lr=1e3), verbose=0)
    assert all(p.data is a and np.isfinite(a).all() for p, a in zip(net.parameters(), arrays))
