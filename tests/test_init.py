"""Weight initialization of FullyConnected: the scale of each scheme, and "auto".

Expected standard deviations (fan_in = D inputs, fan_out = U outputs):
He sqrt(2/fan_in) (He et al. 2015), Glorot sqrt(2/(fan_in + fan_out))
(Glorot & Bengio 2010), normal sqrt(1/fan_in) (LeCun). A 1000 -> 800 layer has
800,000 weights, so the sample std is within about 0.1% of the true one; 2%
still separates Glorot (0.0333) from normal (0.0316).
"""
import math

import numpy as np
import pytest

from nnscratch import Network
from nnscratch.layers import FullyConnected

FAN_IN, FAN_OUT = 1000, 800
EXPECTED_STD = {
    "he": math.sqrt(2 / FAN_IN),
    "glorot": math.sqrt(2 / (FAN_IN + FAN_OUT)),
    "normal": math.sqrt(1 / FAN_IN),
}


def assert_std(W, expected, rel=0.02):
    assert W.shape == (FAN_OUT, FAN_IN)
    assert abs(W.std() / expected - 1) < rel, f"std {W.std():.5f}, expected {expected:.5f}"
    assert abs(W.mean()) < 0.01 * expected   # zero mean: ~ 1/sqrt(800k) ≈ 0.1% of the std


@pytest.mark.parametrize("init", ["he", "glorot", "normal"])
def test_each_scheme_has_its_standard_deviation(init):
    layer = FullyConnected(FAN_OUT, init=init)
    layer.build((FAN_IN,), np.random.default_rng(0), np.float64)
    assert_std(layer.W.data, EXPECTED_STD[init])
    np.testing.assert_array_equal(layer.b.data, np.zeros(FAN_OUT))


@pytest.mark.parametrize("init", ["he", "glorot", "normal"])
def test_explicit_scheme_is_kept_whatever_follows(init):
    net = Network(FAN_IN, seed=1)
    net.add_fc_layer(FAN_OUT, init=init)
    net.add_sigmoid_layer()
    assert_std(net.layers[0].W.data, EXPECTED_STD[init])


@pytest.mark.parametrize("activation,scheme", [
    ("relu", "he"), ("leaky_relu", "he"), ("sigmoid", "glorot"), ("tanh", "glorot"), ("softmax", "glorot"),
])
def test_auto_follows_the_next_activation(activation, scheme):
    net = Network(FAN_IN, seed=2)
    net.add_fc_layer(FAN_OUT)  # init="auto"
    getattr(net, f"add_{activation}_layer")()
    fc = net.layers[0]
    assert fc.W.data.dtype == np.float32
    assert_std(fc.W.data.astype(np.float64), EXPECTED_STD[scheme])
    np.testing.assert_array_equal(fc.b.data, np.zeros(FAN_OUT))


def test_auto_without_a_following_activation_is_he():
    net = Network(FAN_IN, seed=3)
    net.add_fc_layer(FAN_OUT)
    assert_std(net.layers[0].W.data.astype(np.float64), EXPECTED_STD["he"])


def test_auto_rescale_only_applies_to_the_layer_just_before():
    """A sigmoid after the second layer does not change the first one's He weights."""
    net = Network(FAN_IN, seed=4)
    net.add_fc_layer(FAN_OUT)
    net.add_relu_layer()
    net.add_fc_layer(10)
    net.add_sigmoid_layer()
    assert_std(net.layers[0].W.data.astype(np.float64), EXPECTED_STD["he"])
    W2 = net.layers[2].W.data.astype(np.float64)
    expected = math.sqrt(2 / (FAN_OUT + 10))
    assert abs(W2.std() / expected - 1) < 0.05  # 8,000 weights: ~0.8% standard error


def test_weights_come_from_the_seed():
    a, b, c = (FullyConnected(20) for _ in range(3))
    a.build((30,), np.random.default_rng(5), np.float64)
    b.build((30,), np.random.default_rng(5), np.float64)
    c.build((30,), np.random.default_rng(6), np.float64)
    np.testing.assert_array_equal(a.W.data, b.W.data)
    assert not np.array_equal(a.W.data, c.W.data)


@pytest.mark.parametrize("bad", ["xavier", "He", "", None])
def test_unknown_init_lists_the_choices(bad):
    for make in (lambda: FullyConnected(5, init=bad), lambda: Network(3).add_fc_layer(5, init=bad)):
        with pytest.raises(ValueError) as info:
            make()
        message = str(info.value)
        for choice in ("he", "glorot", "normal", "auto"):
            assert f"'{choice}'" in message, message
        assert repr(bad) in message
