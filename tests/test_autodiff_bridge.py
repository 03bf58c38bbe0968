"""The bridge: a layer defined only by Tensor ops trains in a Network, and
net.check_gradients can compare every hand-written backward with autodiff."""
import numpy as np
import pytest

from nnscratch import SGD, AutodiffLayer, Network
from nnscratch import autodiff as ad


def residual_block(x, W, b):
    return x + ad.relu(x @ W.T + b)


def block_params(shape, rng, dtype):
    return {"W": 0.1 * rng.standard_normal((shape[-1], shape[-1])), "b": np.zeros(shape[-1])}


def toy(n=300, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, 6)).astype(np.float32)
    return X, np.argmax(X[:, :3] - X[:, 3:], axis=1)


def test_autodiff_layer_trains_with_no_handwritten_backward():
    X, y = toy()
    net = Network(6, seed=0)
    net.add_fc_layer(8)
    net.add_relu_layer()
    net.add(AutodiffLayer(residual_block, block_params, name="residual"))
    net.add_fc_layer(3)
    net.add_softmax_layer()
    before = net.evaluate(X, y)["accuracy"]
    history = net.fit(X, y, epochs=25, batch_size=20, optimizer=SGD(lr=0.1), verbose=0)
    assert history["loss"][-1] < history["loss"][0] / 3
    assert net.evaluate(X, y)["accuracy"] > max(0.9, before)
    # its autodiff backward agrees with central differences of the whole cost
    rows = net.check_gradients(X[:5].astype(np.float64), y[:5], verbose=False)
    assert max(r["rel_error"] for r in rows if r["layer"] == "residual1") < 1e-7


def test_autodiff_layer_equals_the_same_dense_layer():
    # fn = x Wᵀ + b with the dense layer's own weights: same outputs and gradients
    rng = np.random.default_rng(1)
    x = rng.standard_normal((4, 5))
    dense = Network(5, dtype=np.float64, seed=0).add_fc_layer(3)
    dense.needs_input_grad = True          # the first layer of a network skips dx by default
    twin = AutodiffLayer(lambda x, W, b: x @ W.T + b, {"W": dense.W.data, "b": dense.b.data})
    twin.build((5,), rng, np.float64)
    dy = rng.standard_normal((4, 3))
    np.testing.assert_allclose(twin.forward(x, True), dense.forward(x, True), rtol=1e-12)
    np.testing.assert_allclose(twin.backward(dy), dense.backward(dy), rtol=1e-12)
    np.testing.assert_allclose(twin.params[0].grad, dense.W.grad, rtol=1e-12)
    np.testing.assert_allclose(twin.params[1].grad, dense.b.grad, rtol=1e-12)


def test_check_gradients_with_autodiff_covers_the_layers():
    rng = np.random.default_rng(2)
    net = Network((1, 6, 6), dtype=np.float64, seed=0)
    net.add_conv_layer(3, 3, padding=1)
    net.add_batchnorm_layer()
    net.add_relu_layer()
    net.add_maxpool_layer(2)
    net.add_flatten_layer()
    net.add_dropout_layer(0.3)
    net.add_fc_layer(4)
    net.add_tanh_layer()
    net.add_fc_layer(3)
    net.add_softmax_layer()
    rows = net.check_gradients(rng.standard_normal((3, 1, 6, 6)), method="autodiff", verbose=False)
    checked = {r["layer"] for r in rows if r["rel_error"] is not None}
    assert checked >= {"conv1", "batchnorm1", "relu1", "maxpool1", "flatten1", "fc1", "tanh1", "softmax1"}
    assert max(r["rel_error"] for r in rows if r["rel_error"] is not None) < 1e-6
    assert [r["rel_error"] for r in rows if r["layer"] == "dropout1"] == [None]


def test_check_gradients_rejects_an_unknown_method():
    net = Network(3)
    net.add_fc_layer(2)
    with pytest.raises(ValueError, match="method"):
        net.check_gradients(np.zeros((1, 3)), method="symbolic")
