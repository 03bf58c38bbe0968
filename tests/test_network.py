"""The Network: the seed's interface, the new API, determinism, and what bad input gets."""
import os
import pickle
import signal
from functools import partial

import numpy as np
import pytest
from conftest import assert_rows_small, toy_classes

from nnscratch import (SGD, Adam, Callback, Network, TrainingDiverged, UnsafePickleError, cross_entropy_cost,
                       cross_entropy_cost_prime_SM, gen_clusters, quadratic_cost, quadratic_cost_prime)


small_data = partial(toy_classes, n=200, d=12, k=3, features="normal")   # X (200, 12), y in {0, 1, 2}


def mlp(d=12, k=3, seed=0, hidden=16, **kw):
    net = Network(d, seed=seed, **kw)
    net.add_fc_layer(hidden)
    net.add_relu_layer()
    net.add_fc_layer(k)
    net.add_softmax_layer()
    return net


# -- the seed's interface ---------------------------------------------------------
def test_seed_cluster_example_classifies_test_points(capsys):
    training_data, test_data, choices = gen_clusters()
    net = Network(2, quadratic_cost, quadratic_cost_prime)
    net.add_fc_layer(4)
    net.add_sigmoid_layer(4)
    net.add_fc_layer(3)
    net.add_sigmoid_layer(3)
    net.stochastic_gradient_descent(training_data, 30, 50, 0.9, test_data)
    correct = sum(int(np.argmax(net.forward_pass(x)) == np.argmax(t)) for x, t in test_data)
    assert correct / len(test_data) >= 0.95
    out = capsys.readouterr().out
    assert out.startswith("Epoch 0: Test_data: ")
    assert "Train Cost = " in out and "Test Cost = " in out
    assert choices[np.argmax(net.forward_pass(test_data[0][0]))] in choices


def test_seed_forward_pass_takes_and_returns_columns():
    net = Network(784, cross_entropy_cost, cross_entropy_cost_prime_SM)
    net.add_fc_layer(50)
    net.add_relu_layer(50)
    net.add_fc_layer(10)
    net.add_relu_layer(10)
    net.add_softmax_layer(10)
    out = net.forward_pass(np.random.default_rng(0).random((784, 1)))
    assert out.shape == (10, 1)
    assert np.isclose(out.sum(), 1.0, atol=1e-6)


def test_seed_pickle_round_trip_gives_same_outputs(tmp_path):
    net = mlp()
    X, _ = small_data()
    with open(tmp_path / "net.pickle", "wb") as f:
        pickle.dump(net, f)
    with open(tmp_path / "net.pickle", "rb") as f:
        again = pickle.load(f)
    np.testing.assert_array_equal(net.predict_proba(X), again.predict_proba(X))


def test_redundant_size_argument_is_checked():
    net = Network(784)
    net.add_fc_layer(50)
    with pytest.raises(ValueError, match="size 40"):
        net.add_relu_layer(40)


# -- the new API ---------------------------------------------------------------------
def test_fit_learns_and_history_has_every_record():
    X, y = small_data()
    net = mlp()
    history = net.fit(X, y, epochs=15, batch_size=16, optimizer=Adam(lr=1e-2),
                      validation_data=(X[:50], y[:50]), verbose=0)
    for key in ("loss", "accuracy", "val_loss", "val_accuracy", "time", "lr"):
        assert len(history[key]) == 15, key
    assert history["loss"][-1] < history["loss"][0] / 3
    assert net.evaluate(X, y)["accuracy"] > 0.9
    assert set(net.evaluate(X, y)) == {"loss", "accuracy"}


def test_integer_and_one_hot_labels_train_identically():
    X, y = small_data()
    a, b = mlp(), mlp()
    ha = a.fit(X, y, epochs=2, batch_size=32, optimizer=SGD(lr=0.1), verbose=0)
    hb = b.fit(X, np.eye(3)[y], epochs=2, batch_size=32, optimizer=SGD(lr=0.1), verbose=0)
    assert ha["loss"] == hb["loss"]
    for p, q in zip(a.parameters(), b.parameters()):
        np.testing.assert_array_equal(p.data, q.data)


def test_same_seed_same_run_bit_for_bit_and_other_seed_differs():
    X, y = small_data()
    runs = []
    for seed in (3, 3, 4):
        net = mlp(seed=seed)
        net.fit(X, y, epochs=2, batch_size=10, optimizer=Adam(), verbose=0)
        runs.append(np.concatenate([p.data.ravel() for p in net.parameters()]))
    assert np.array_equal(runs[0], runs[1])
    assert not np.allclose(runs[0], runs[2])


def test_predict_and_predict_proba_agree():
    X, _ = small_data()
    net = mlp()
    proba = net.predict_proba(X)
    assert proba.shape == (len(X), 3) and proba.dtype == np.float32
    np.testing.assert_allclose(proba.sum(axis=1), 1, atol=1e-5)
    np.testing.assert_array_equal(net.predict(X), proba.argmax(axis=1))


def test_float64_network_keeps_float64():
    net = mlp(dtype=np.float64)
    assert all(p.data.dtype == np.float64 for p in net.parameters())
    assert net.predict_proba(small_data()[0]).dtype == np.float64


def test_binary_cross_entropy_with_a_sigmoid_output():
    X, y = small_data(k=2)
    net = Network(12, cost="binary_cross_entropy", seed=0)
    net.add_fc_layer(8)
    net.add_tanh_layer()
    net.add_fc_layer(1)
    net.add_sigmoid_layer()
    net.fit(X, y, epochs=20, batch_size=20, optimizer=Adam(lr=1e-2), verbose=0)
    assert net.evaluate(X, y)["accuracy"] > 0.9


def test_summary_lists_layers_parameters_and_flops():
    text = mlp().summary()
    assert "fc1" in text and "softmax1" in text
    assert f"{12 * 16 + 16 + 16 * 3 + 3:,} parameters" in text  # W and b of both dense layers
    assert "FLOPs" in text


def test_check_gradients_reports_small_errors(capsys):
    X, y = small_data(n=5)
    net = Network(12, seed=0)
    net.add_fc_layer(7)
    net.add_leaky_relu_layer()
    net.add_fc_layer(5)
    net.add_tanh_layer()
    net.add_fc_layer(3)
    net.add_softmax_layer()
    rows = net.check_gradients(X, y)
    assert {(r["layer"], r["what"]) for r in rows} >= {("fc1", "W"), ("fc1", "b"), ("tanh1", "input")}
    assert_rows_small(rows)
    assert "relative error" in capsys.readouterr().out


# -- persistence -------------------------------------------------------------------
def test_save_and_load_round_trip(tmp_path):
    X, y = small_data()
    net = mlp()
    net.fit(X, y, epochs=1, verbose=0)
    net.save(tmp_path / "sub" / "net.pickle")
    again = Network.load(tmp_path / "sub" / "net.pickle")
    np.testing.assert_array_equal(net.predict_proba(X), again.predict_proba(X))
    # the generator comes back too: training on continues identically
    net.fit(X, y, epochs=1, verbose=0)
    again.fit(X, y, epochs=1, verbose=0)
    np.testing.assert_array_equal(net.predict_proba(X), again.predict_proba(X))


class _RunsAShellCommand:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_load_refuses_a_pickle_that_would_run_a_command(tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pickle"
    with open(path, "wb") as f:
        pickle.dump({"net": _RunsAShellCommand(marker)}, f)
    with pytest.raises(UnsafePickleError, match="system"):
        Network.load(path)
    assert not marker.exists()
    # ...whereas plain pickle would have run it: the test's payload is real
    with open(path, "rb") as f:
        pickle.load(f)
    assert marker.exists()


def _global_only_pickle(module, name):
    """A protocol-4 pickle that only looks up ``module.name`` (SHORT_BINUNICODE x2, STACK_GLOBAL)."""
    m, n = module.encode(), name.encode()
    return b"\x80\x04\x8c" + bytes([len(m)]) + m + b"\x8c" + bytes([len(n)]) + n + b"\x93."


@pytest.mark.parametrize("module, name", [
    ("nnscratch.data", "os.system"),          # a dotted name reaching through an nnscratch module
    ("nnscratch.persistence", "pickle"),      # a module, not a class
    ("nnscratch.data", "load_mnist"),         # an nnscratch function that is not a seed cost
    ("builtins", "eval"),
    ("numpy", "load"),
])
def test_load_refuses_anything_but_nnscratch_classes_and_array_rebuilders(tmp_path, module, name):
    path = tmp_path / "sneaky.pickle"
    path.write_bytes(_global_only_pickle(module, name))
    with pytest.raises(UnsafePickleError, match="refusing"):
        Network.load(path)


# -- bad input ------------------------------------------------------------------------
def test_wrong_feature_count_names_layer_and_shapes():
    net = Network(784)
    net.add_fc_layer(10)
    with pytest.raises(ValueError, match=r"fc1.*\(N, 784\).*\(5, 783\)"):
        net.forward(np.zeros((5, 783)))


def test_labels_out_of_range_or_wrong_length_rejected_before_training():
    X, y = small_data()
    net = mlp()
    before = [p.data.copy() for p in net.parameters()]
    with pytest.raises(ValueError, match=r"\[0, 2\]"):
        net.fit(X, np.where(y == 0, 3, y), verbose=0)
    with pytest.raises(ValueError, match="200 samples but 199 labels"):
        net.fit(X, y[:-1], verbose=0)
    with pytest.raises(ValueError, match="class ids"):
        net.fit(X, np.eye(4)[y], verbose=0)
    assert all(np.array_equal(b, p.data) for b, p in zip(before, net.parameters()))


@pytest.mark.filterwarnings("ignore:overflow:RuntimeWarning", "ignore:invalid value:RuntimeWarning")
def test_diverging_cost_stops_with_epoch_and_batch_and_keeps_last_finite_cost_weights():
    X, y = small_data()
    net = mlp()

    class Snapshots(Callback):
        def __init__(self):
            self.weights = []

        def on_batch_end(self, run):
            self.weights.append([p.data.copy() for p in run.net.parameters()])

    snaps = Snapshots()
    with pytest.raises(TrainingDiverged, match=r"epoch \d+, batch \d+"):
        net.fit(X * 100, y, epochs=50, batch_size=10, optimizer=SGD(lr=1e6), callbacks=[snaps], verbose=0)
    # The failing batch was computed with the weights of the last snapshot; the
    # net must hold the ones before them, whose cost was finite.
    assert len(snaps.weights) >= 2
    for kept, expected in zip(net.parameters(), snaps.weights[-2]):
        np.testing.assert_array_equal(kept.data, expected)
    assert all(np.isfinite(p.data).all() for p in net.parameters())


def test_ctrl_c_stops_at_a_batch_boundary_and_returns_history():
    X, y = small_data()
    net = mlp()

    class PressCtrlC(Callback):
        def __init__(self):
            self.batches = 0

        def on_batch_end(self, run):
            self.batches += 1
            if run.epoch == 2 and run.batch == 3:
                os.kill(os.getpid(), signal.SIGINT)

    presser = PressCtrlC()
    history = net.fit(X, y, epochs=5, batch_size=20, callbacks=[presser], verbose=0)
    assert history.interrupted
    assert history.epochs == 2                  # the interrupted epoch is recorded, no more
    assert presser.batches == 10 + 3            # one full epoch, then stopped after batch 3
    assert np.isfinite(net.predict_proba(X)).all()
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_bad_constructor_arguments():
    with pytest.raises(ValueError, match="cost must be one of"):
        Network(4, cost="hinge")
    with pytest.raises(ValueError, match="dtype"):
        Network(4, dtype=np.int32)
    with pytest.raises(ValueError, match="input_shape"):
        Network(0)


def test_state_dict_round_trip_includes_batchnorm_statistics():
    X, y = small_data()
    net = Network(12, seed=0)
    net.add_fc_layer(8)
    net.add_batchnorm_layer()
    net.add_relu_layer()
    net.add_fc_layer(3)
    net.add_softmax_layer()
    state = net.state_dict()
    assert set(state) == {"fc1.W", "fc1.b", "batchnorm1.gamma", "batchnorm1.beta",
                          "batchnorm1.running_mean", "batchnorm1.running_var", "fc2.W", "fc2.b"}
    before = net.predict_proba(X)
    net.fit(X, y, epochs=2, batch_size=16, verbose=0)
    assert not np.allclose(net.predict_proba(X), before)
    net.load_state_dict(state)
    np.testing.assert_array_equal(net.predict_proba(X), before)
    with pytest.raises(ValueError, match=r"fc1.W: expected shape \(8, 12\)"):
        net.load_state_dict({**state, "fc1.W": np.zeros((12, 8))})


def test_batchnorm_net_rejects_a_last_batch_of_one_before_training():
    X, y = small_data(n=33)
    net = Network(12, seed=0)
    net.add_fc_layer(8)
    net.add_batchnorm_layer()
    net.add_fc_layer(3)
    net.add_softmax_layer()
    with pytest.raises(ValueError, match="last batch of one"):
        net.fit(X, y, batch_size=32, verbose=0)
    assert net.history is None  # nothing started
