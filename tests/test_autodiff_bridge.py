"""The bridge: a layer defined only by Tensor ops trains in a Network, and
net.check_gradients(method="autodiff") compares every hand-written gradient with
autodiff: each layer (dropout, recurrent layers, blocks and the layers inside
them included) and the whole training step."""
import numpy as np
import pytest

from nnscratch import (SGD, AutodiffLayer, BatchNorm, Dropout, FullyConnected, Network, ReLU, Residual,
                       Sequential, Tanh)
from nnscratch import autodiff as ad
from nnscratch.costs import CrossEntropyLogits
from nnscratch.layers import Layer


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
    # dropout too, with the mask it drew (it used to be skipped)
    assert [r["what"] for r in rows if r["layer"] == "dropout1"] == ["forward", "input"]
    assert all(r["rel_error"] is not None for r in rows)
    # and the training step: every parameter's gradient through the cost and the fused softmax
    step = {r["what"]: r["rel_error"] for r in rows if r["layer"] == "train_step"}
    assert set(step) == {"loss"} | {f"{name}.{p.name}" for name, layer in net.named_layers()
                                    for p in layer.parameters()}


def covered(rows):
    """Every row has a number below 1e-6; returns {layer: [what, ...]}."""
    bad = [r for r in rows if r["rel_error"] is None or not r["rel_error"] < 1e-6]
    assert not bad, bad
    layers = {}
    for r in rows:
        layers.setdefault(r["layer"], []).append(r["what"])
    return layers


def test_check_gradients_with_autodiff_covers_recurrent_layers_and_embeddings():
    net = Network((6,), dtype=np.float64, seed=1)
    net.add_embedding_layer(7, 3)
    net.add_rnn_layer(4, return_sequences=True)
    net.add_lstm_layer(4, return_sequences=True, impl="naive")
    net.add_gru_layer(5, return_sequences=True)
    net.add_fc_layer(7)
    net.add_softmax_layer()
    ids = np.random.default_rng(3).integers(0, 7, (4, 6))
    labels = np.random.default_rng(4).integers(0, 7, (4, 6))          # one class per time step
    layers = covered(net.check_gradients(ids, labels, method="autodiff", verbose=False))
    assert layers["embedding1"] == ["forward", "W"]                   # token ids have no gradient
    for name in ("rnn1", "lstm1", "gru1"):
        assert layers[name] == ["forward", "input", "W_ih", "W_hh", "b_ih", "b_hh"]
    assert {"lstm1.W_hh", "gru1.b_hh", "embedding1.W"} <= set(layers["train_step"])


def test_check_gradients_with_autodiff_covers_blocks_and_their_layers():
    net = Network(5, "binary_cross_entropy", dtype=np.float64, seed=2)
    net.add_fc_layer(4)
    net.add(Residual(FullyConnected(4), BatchNorm(), ReLU(), Dropout(0.5), FullyConnected(4)))
    net.add(Sequential(Residual(FullyConnected(4), Tanh()), FullyConnected(2)))
    net.add_sigmoid_layer()
    X = np.random.default_rng(5).standard_normal((6, 5))
    rows = net.check_gradients(X, method="autodiff", verbose=False)
    layers = covered(rows)
    assert layers["block1"] == ["forward", "input"]                   # the block as a whole: x + f(x)
    assert layers["block1.batchnorm1"] == ["forward", "input", "gamma", "beta"]
    assert layers["block1.dropout1"] == ["forward", "input"]
    assert layers["block2.block1"] == ["forward", "input"]
    assert layers["block2.block1.fc1"] == ["forward", "input", "W", "b"]
    assert {"block1.fc2.W", "block2.block1.fc1.b", "block2.fc1.W"} <= set(layers["train_step"])


def test_check_gradients_with_autodiff_covers_cross_entropy_on_logits_and_autodiff_layers():
    net = Network(6, CrossEntropyLogits(), dtype=np.float64, seed=3)
    net.add_fc_layer(6)
    net.add(AutodiffLayer(residual_block, block_params, name="residual"))
    net.add_fc_layer(3)
    layers = covered(net.check_gradients(np.random.default_rng(6).standard_normal((5, 6)), [0, 1, 2, 1, 0],
                                         method="autodiff", verbose=False))
    assert layers["residual1"] == ["forward", "input", "W", "b"]
    assert set(layers["train_step"]) == {"loss", "fc1.W", "fc1.b", "residual1.W", "residual1.b", "fc2.W",
                                         "fc2.b"}


class SlightlyWrongDense(FullyConnected):
    kind = "fc"

    def backward(self, dy):
        dx = super().backward(dy)
        self.W.grad[0, 0] += 1e-3 * np.linalg.norm(self.W.grad)         # one entry off by 0.1% of the norm
        return dx


def test_check_gradients_with_autodiff_catches_a_wrong_backward():
    net = Network(4, dtype=np.float64, seed=4)
    net.add_fc_layer(5)
    net.add_relu_layer()
    net.add(SlightlyWrongDense(3))                                   # its Tensor-op form: FullyConnected's
    net.add_softmax_layer()
    X = np.random.default_rng(7).standard_normal((6, 4))
    rows = net.check_gradients(X, method="autodiff", verbose=False)
    wrong = {(r["layer"], r["what"]) for r in rows if not r["rel_error"] < 1e-6}
    assert wrong == {("fc2", "W"), ("train_step", "fc2.W")}


def test_check_gradients_with_autodiff_names_a_layer_it_cannot_translate():
    class Mystery(Layer):
        kind = "mystery"

        def forward(self, x, training=False):
            return 2 * x

        def backward(self, dy):
            return 2 * dy
    net = Network(3, "quadratic", dtype=np.float64)
    net.add(Mystery())
    with pytest.raises(TypeError, match=r"mystery1 \(Mystery\) has no Tensor-op form"):
        net.check_gradients(np.ones((2, 3)), method="autodiff", verbose=False)


def test_check_gradients_rejects_an_unknown_method():
    net = Network(3)
    net.add_fc_layer(2)
    with pytest.raises(ValueError, match="method"):
        net.check_gradients(np.zeros((1, 3)), method="symbolic")
