"""Dropout: its gradient, its statistics, and where its randomness comes from.

Inverted dropout keeps each unit with probability 1 - p and scales the kept
ones by 1/(1 - p), so E[y] = x; evaluation is the identity. Every expected
value below is computed from those formulas, never read back from the layer.
"""
import pickle

import numpy as np
import pytest
from conftest import TOL, assert_all_small, away_from_zero, built, randn

from nnscratch import SGD, Network
from nnscratch import gradcheck
from nnscratch.layers import Dropout


# Per-sample shapes and batch sizes: a batch of one, odd sizes, images.
SHAPES = [((1,), 1), ((7,), 3), ((5,), 1), ((2, 3, 5), 1), ((3, 4, 5), 2), ((1, 3, 7), 3)]



# -- finite differences ---------------------------------------------------------------
@pytest.mark.parametrize("input_shape,n", SHAPES)
@pytest.mark.parametrize("p", [0.3, 0.5])
def test_gradient_with_fixed_mask(input_shape, n, p):
    layer = built(Dropout(p), input_shape)
    x = randn((n,) + input_shape, 1)
    assert_all_small(gradcheck.check_layer(layer, x, training=True), {"input"})


@pytest.mark.parametrize("input_shape,n", SHAPES)
def test_gradient_in_eval_mode(input_shape, n):
    layer = built(Dropout(0.5), input_shape)
    errors = gradcheck.check_layer(layer, randn((n,) + input_shape, 2), training=False)
    assert errors["input"] < TOL, errors


def test_gradient_check_catches_a_backward_without_the_mask():
    """The check above can fail: a backward that forgets the mask is caught."""

    class Unmasked(Dropout):
        def backward(self, dy):
            return dy / (1 - self.p)

    layer = built(Unmasked(0.5), (20,))
    errors = gradcheck.check_layer(layer, randn((4, 20), 3), training=True)
    assert errors["input"] > 1e-2


# -- evaluation mode ---------------------------------------------------------------------
@pytest.mark.parametrize("input_shape,n", [((6,), 4), ((2, 3, 4), 2)])
def test_eval_mode_is_the_identity_and_deterministic(input_shape, n):
    layer = built(Dropout(0.5), input_shape)
    x = randn((n,) + input_shape, 4)
    y1 = layer.forward(x, training=False)
    y2 = layer.forward(x)  # training defaults to False
    np.testing.assert_array_equal(y1, x)
    np.testing.assert_array_equal(y2, x)
    dy = randn(x.shape, 5)
    np.testing.assert_array_equal(layer.backward(dy), dy)


def test_eval_mode_draws_no_random_numbers():
    rng = np.random.default_rng(0)
    layer = Dropout(0.5)
    layer.build((10,), rng, np.float64)
    before = rng.bit_generator.state
    layer.forward(randn((3, 10), 0), training=False)
    assert rng.bit_generator.state == before


# -- training statistics ------------------------------------------------------------------
@pytest.mark.parametrize("p", [0.1, 0.3, 0.5, 0.8])
def test_fraction_dropped_is_p(p):
    layer = built(Dropout(p), (1000,), seed=7)
    x = away_from_zero((200, 1000), 8)                # 200k units
    y = layer.forward(x, training=True)
    assert abs(np.mean(y == 0) - p) < 0.005


def test_masks_differ_between_calls():
    layer = built(Dropout(0.5), (1000,), seed=1)
    x = np.ones((4, 1000))
    a = layer.forward(x, training=True)
    b = layer.forward(x, training=True)
    assert not np.array_equal(a == 0, b == 0)


@pytest.mark.parametrize("dtype,rtol", [(np.float64, 1e-15), (np.float32, 1e-6)])
@pytest.mark.parametrize("p", [0.2, 0.3, 0.75])
def test_kept_units_are_scaled_by_one_over_one_minus_p(p, dtype, rtol):
    layer = built(Dropout(p), (50, 40), seed=2, dtype=dtype)
    x = away_from_zero((10, 50, 40), 9).astype(dtype)
    y = layer.forward(x, training=True)
    assert y.dtype == dtype
    kept = y != 0
    assert 0 < kept.sum() < kept.size
    expected = x.astype(np.float64) / (1.0 - p)
    np.testing.assert_allclose(y[kept], expected[kept], rtol=rtol, atol=0)


def test_expected_output_equals_input():
    """Averaged over many masks, each unit's output is its input: E[m/(1-p)] = 1."""
    p, reps = 0.3, 40000
    v = np.array([-2.0, -0.5, 0.25, 1.0, 3.0])
    layer = built(Dropout(p), (5,), seed=3)
    y = layer.forward(np.tile(v, (reps, 1)), training=True)   # (reps, 5)
    # Var[y_i] = v_i² p / (1 - p); allow five standard errors of the mean.
    stderr = np.abs(v) * np.sqrt(p / (1 - p) / reps)
    assert np.all(np.abs(y.mean(axis=0) - v) < 5 * stderr)
    # and the mean over all units of a random input
    x = randn((400, 500), 4)
    y = built(Dropout(p), x.shape[1:], seed=5).forward(x, training=True)
    assert abs(y.mean() - x.mean()) < 5 * np.sqrt(np.mean(x * x) * p / (1 - p) / x.size)


@pytest.mark.parametrize("input_shape,n", [((9,), 6), ((3, 4, 5), 2)])
def test_backward_applies_the_forward_mask(input_shape, n):
    p = 0.4
    layer = built(Dropout(p), input_shape, seed=6)
    x = away_from_zero((n,) + input_shape, 10)
    y = layer.forward(x, training=True)
    dy = randn(x.shape, 11)
    dx = layer.backward(dy)
    np.testing.assert_allclose(dx, dy * (y != 0) / (1 - p), rtol=1e-15, atol=0)
    # The mask also holds for a second backward of the same forward.
    np.testing.assert_allclose(layer.backward(2 * dy), 2 * dy * (y != 0) / (1 - p), rtol=1e-15, atol=0)


def test_p_zero_is_the_identity_in_training():
    layer = built(Dropout(0.0), (8,))
    x = randn((5, 8), 12)
    np.testing.assert_array_equal(layer.forward(x, training=True), x)
    dy = randn((5, 8), 13)
    np.testing.assert_array_equal(layer.backward(dy), dy)


@pytest.mark.parametrize("p", [-0.1, 1.0, 1.5, float("nan")])
def test_p_outside_zero_one_is_refused(p):
    with pytest.raises(ValueError, match=r"\[0, 1\)"):
        Dropout(p)
    with pytest.raises(ValueError):
        Network(4).add_dropout_layer(p)


# -- the network's generator -----------------------------------------------------------
def toy_data(n=64, d=10, k=3, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, d)).astype(np.float32)
    y = np.argmax(X @ rng.standard_normal((d, k)), axis=1)
    return X, y


def dropout_net(seed, p=0.5, d=10, k=3):
    net = Network(d, seed=seed)
    net.add_fc_layer(32)
    net.add_relu_layer()
    net.add_dropout_layer(p)
    net.add_fc_layer(k)
    net.add_softmax_layer()
    return net


def weights(net):
    return [p.data.copy() for p in net.parameters()]


def assert_same_weights(a, b):
    assert len(a) == len(b)
    for wa, wb in zip(a, b):
        np.testing.assert_array_equal(wa, wb)


def test_dropout_layer_uses_the_network_generator():
    net = dropout_net(0)
    assert net.layers[2].rng is net.rng


def test_same_seed_gives_the_same_training_run_bit_for_bit():
    X, y = toy_data()
    runs = []
    for _ in range(2):
        np.random.seed(len(runs))  # global NumPy state must not matter
        net = dropout_net(seed=3)
        net.fit(X, y, epochs=3, batch_size=16, optimizer=SGD(lr=0.1), verbose=0)
        runs.append(weights(net))
    assert_same_weights(*runs)


def test_different_seeds_give_different_runs():
    X, y = toy_data()
    a, b = dropout_net(seed=3), dropout_net(seed=4)
    for net in (a, b):
        net.fit(X, y, epochs=2, batch_size=16, optimizer=SGD(lr=0.1), verbose=0)
    assert not all(np.array_equal(wa, wb) for wa, wb in zip(weights(a), weights(b)))


def test_only_the_masks_differ_when_the_generator_state_differs():
    """Same initial weights, no shuffling: a different generator state changes
    the run only through the dropout masks, so they come from net.rng."""
    X, y = toy_data()
    a, b = dropout_net(seed=3), dropout_net(seed=3)
    assert_same_weights(weights(a), weights(b))
    b.rng.bit_generator.state = np.random.default_rng(99).bit_generator.state
    for net in (a, b):
        net.fit(X, y, epochs=1, batch_size=16, optimizer=SGD(lr=0.1), shuffle=False, verbose=0)
    assert not all(np.array_equal(wa, wb) for wa, wb in zip(weights(a), weights(b)))
    # and without dropout the same change of state would change nothing
    c, d = dropout_net(seed=3, p=0.0), dropout_net(seed=3, p=0.0)
    d.rng.bit_generator.state = np.random.default_rng(99).bit_generator.state
    for net in (c, d):
        net.fit(X, y, epochs=1, batch_size=16, optimizer=SGD(lr=0.1), shuffle=False, verbose=0)
    assert_same_weights(weights(c), weights(d))


def test_save_and_load_keep_dropout_on_the_network_generator(tmp_path):
    X, y = toy_data()
    net = dropout_net(seed=5)
    net.fit(X, y, epochs=1, batch_size=16, optimizer=SGD(lr=0.1), verbose=0)
    path = tmp_path / "dropout.pickle"
    net.save(path)
    loaded = Network.load(path)
    i = next(i for i, layer in enumerate(loaded.layers) if isinstance(layer, Dropout))
    assert isinstance(loaded.layers[i], Dropout) and loaded.layers[i].p == 0.5
    assert loaded.layers[i].rng is loaded.rng
    assert_same_weights(weights(net), weights(loaded))
    np.testing.assert_array_equal(net.predict_proba(X), loaded.predict_proba(X))
    # The saved generator state carries on: training both further gives the same run.
    for n in (net, loaded):
        n.fit(X, y, epochs=2, batch_size=16, optimizer=SGD(lr=0.1), verbose=0)
    assert_same_weights(weights(net), weights(loaded))


def test_a_pickled_dropout_layer_keeps_its_generator_state():
    layer = built(Dropout(0.5), (100,), seed=8)
    layer.forward(np.ones((2, 100)), training=True)       # move the generator on
    again = pickle.loads(pickle.dumps(layer))
    assert isinstance(again.rng, np.random.Generator) and again.rng is not layer.rng
    x = np.ones((3, 100))
    np.testing.assert_array_equal(again.forward(x, training=True), layer.forward(x, training=True))
