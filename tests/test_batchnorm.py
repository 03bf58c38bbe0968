"""BatchNorm: gradients, the normalization itself, running statistics, dtypes, persistence.

Expected values are written out here from the definitions (Ioffe & Szegedy
2015; PyTorch's documented BatchNorm1d/2d: momentum 0.1, eps 1e-5, biased
variance for normalizing, unbiased variance in ``running_var``), never read
back from the layer.
"""
import numpy as np
import pytest
from conftest import TOL, assert_all_small, built, randn

from nnscratch import SGD, Network
from nnscratch import gradcheck
from nnscratch.layers import BatchNorm

EPS = 1e-5

# Full input shapes (N, D) and (N, C, H, W): two samples, odd D, non-square
# spatial sizes, a single image with several values per channel.
SHAPES = [(2, 3), (2, 7), (5, 7), (16, 4),
          (3, 4, 5, 2), (2, 3, 4, 6), (1, 2, 3, 3), (1, 3, 1, 2), (4, 2, 1, 1)]


def values_per_feature(shape):
    return int(np.prod(shape)) // shape[1]


def stat_axes(x):
    return (0,) if x.ndim == 2 else (0, 2, 3)


def per_feature(v, x):
    """A (C,) vector shaped to broadcast over x's feature axis 1."""
    return v.reshape((1, -1) + (1,) * (x.ndim - 2))


def randomize(layer, seed):
    """Non-trivial gamma (some negative), beta and running statistics."""
    rng = np.random.default_rng(seed)
    c = layer.gamma.data.shape
    layer.gamma.data[...] = rng.uniform(0.5, 2.0, c) * rng.choice([-1.0, 1.0], c)
    layer.beta.data[...] = rng.standard_normal(c)
    layer.running_mean[...] = rng.standard_normal(c)
    layer.running_var[...] = rng.uniform(0.5, 2.0, c)


def bn_input(shape, seed):
    """Inputs with a non-zero mean and a scale of 2. With only two values per
    feature the normalized output is ±1 whatever x is, and ∂y/∂x is of order
    ε/σ³: the inputs are then made small so that gradient is not lost in the
    finite difference's rounding."""
    scale = 0.003 if values_per_feature(shape) == 2 else 2.0
    return 1.0 + scale * randn(shape, seed)


# -- finite differences ---------------------------------------------------------------
@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("training", [True, False])
def test_gradients(shape, training):
    layer = built(BatchNorm(), shape[1:])
    randomize(layer, 1)
    errors = gradcheck.check_layer(layer, bn_input(shape, 2), training=training)
    assert_all_small(errors, {"input", "gamma", "beta"})


@pytest.mark.parametrize("shape", [(2, 3), (1, 3, 1, 2)])
def test_gradients_with_a_large_eps(shape):
    """eps enters the backward too: with eps = 0.1 the two-value case is well conditioned."""
    layer = built(BatchNorm(eps=0.1), shape[1:])
    randomize(layer, 3)
    errors = gradcheck.check_layer(layer, 1.0 + 2.0 * randn(shape, 4), training=True)
    assert max(errors.values()) < TOL, errors


def test_gradient_check_catches_a_backward_that_ignores_the_batch_statistics():
    """In training μ and σ² depend on x; treating them as constants is wrong and must be caught."""

    class FrozenStats(BatchNorm):
        def backward(self, dy):
            x_hat, inv_std, _ = self._cache
            self.beta.grad = dy.sum(axis=self._axes)
            self.gamma.grad = (dy * x_hat).sum(axis=self._axes)
            return dy * (self.gamma.data * inv_std).reshape(self._stat_shape)

    layer = built(FrozenStats(), (7,))
    randomize(layer, 5)
    assert gradcheck.check_layer(layer, bn_input((5, 7), 6), training=True)["input"] > 1e-2


# -- the forward pass in training ---------------------------------------------------------
@pytest.mark.parametrize("shape", [(64, 5), (8, 3, 4, 5), (1, 2, 6, 7)])
def test_training_output_has_mean_beta_and_std_gamma(shape):
    layer = built(BatchNorm(), shape[1:])
    randomize(layer, 7)
    x = 3.0 + 2.5 * randn(shape, 8)
    y = layer.forward(x, training=True)
    axes = stat_axes(x)
    gamma, beta = layer.gamma.data, layer.beta.data
    mu = x.mean(axis=axes)
    var = ((x - per_feature(mu, x)) ** 2).mean(axis=axes)          # biased
    expected = per_feature(gamma, x) * (x - per_feature(mu, x)) / np.sqrt(per_feature(var, x) + EPS) \
        + per_feature(beta, x)
    np.testing.assert_allclose(y, expected, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(y.mean(axis=axes), beta, rtol=0, atol=1e-12)
    # std of y is |γ| σ / sqrt(σ² + ε): |γ| up to the ε term
    np.testing.assert_allclose(y.std(axis=axes), np.abs(gamma) * np.sqrt(var / (var + EPS)), rtol=1e-10)
    np.testing.assert_allclose(y.std(axis=axes), np.abs(gamma), rtol=1e-5)


def test_features_are_normalized_independently():
    """Scaling one feature by 1000 changes nothing in the others' outputs."""
    layer = built(BatchNorm(), (4,))
    x = randn((10, 4), 9)
    y = layer.forward(x, training=True)
    x2 = x.copy()
    x2[:, 2] *= 1000
    y2 = layer.forward(x2, training=True)
    np.testing.assert_allclose(y2[:, [0, 1, 3]], y[:, [0, 1, 3]], rtol=1e-12)


def test_channels_last_memory_layout_gives_the_same_result():
    """Conv layers hand on (N, C, H, W) views of channels-last memory; BatchNorm must not care."""
    layer = built(BatchNorm(), (3, 4, 5))
    randomize(layer, 17)
    x_nhwc = 1.0 + randn((2, 4, 5, 3), 18)
    x_view = x_nhwc.transpose(0, 3, 1, 2)                      # (N, C, H, W), not C-contiguous
    x_copy = np.ascontiguousarray(x_view)
    dy = randn(x_copy.shape, 19)
    y_view, dx_view = layer.forward(x_view, training=True), layer.backward(dy)
    y_copy, dx_copy = layer.forward(x_copy, training=True), layer.backward(dy)
    np.testing.assert_allclose(y_view, y_copy, rtol=1e-13, atol=1e-13)
    np.testing.assert_allclose(dx_view, dx_copy, rtol=1e-13, atol=1e-13)


# -- running statistics ---------------------------------------------------------------------
def pytorch_running_update(running_mean, running_var, x, momentum):
    """torch.nn.BatchNorm: running = (1 - m) running + m batch_stat, unbiased variance."""
    axes = stat_axes(x)
    mean = x.mean(axis=axes)
    unbiased = x.var(axis=axes, ddof=1)
    return ((1 - momentum) * running_mean + momentum * mean,
            (1 - momentum) * running_var + momentum * unbiased)


@pytest.mark.parametrize("shape", [(6, 5), (3, 4, 5, 2), (1, 3, 2, 3)])
@pytest.mark.parametrize("momentum", [0.1, 0.3])
def test_running_statistics_follow_pytorch(shape, momentum):
    layer = built(BatchNorm(momentum=momentum), shape[1:])
    c = shape[1]
    np.testing.assert_array_equal(layer.running_mean, np.zeros(c))
    np.testing.assert_array_equal(layer.running_var, np.ones(c))
    rm, rv = np.zeros(c), np.ones(c)
    for step in range(5):
        x = (step - 1.0) + (1.0 + step) * randn(shape, 10 + step)
        layer.forward(x, training=True)
        rm, rv = pytorch_running_update(rm, rv, x, momentum)
        np.testing.assert_allclose(layer.running_mean, rm, rtol=1e-12, atol=1e-14)
        np.testing.assert_allclose(layer.running_var, rv, rtol=1e-12, atol=1e-14)


def test_eval_mode_uses_running_statistics_and_leaves_them_alone():
    layer = built(BatchNorm(), (3, 4, 5))
    randomize(layer, 11)
    for step in range(3):
        layer.forward(2.0 + 3.0 * randn((4, 3, 4, 5), 12 + step), training=True)
    rm, rv = layer.running_mean.copy(), layer.running_var.copy()
    x = randn((2, 3, 4, 5), 20)
    y = layer.forward(x, training=False)
    g, b = layer.gamma.data, layer.beta.data
    expected = np.empty_like(x)
    for c in range(3):
        expected[:, c] = g[c] * (x[:, c] - rm[c]) / np.sqrt(rv[c] + EPS) + b[c]
    np.testing.assert_allclose(y, expected, rtol=1e-12, atol=1e-12)
    np.testing.assert_array_equal(layer.running_mean, rm)
    np.testing.assert_array_equal(layer.running_var, rv)
    # eval output of one sample does not depend on the rest of the batch
    np.testing.assert_allclose(layer.forward(x[:1], training=False), y[:1], rtol=1e-13, atol=1e-13)


# -- batches of one and unsupported shapes -------------------------------------------------------
@pytest.mark.parametrize("shape", [(1, 5), (1, 3, 1, 1)])
def test_one_value_per_feature_in_training_is_refused(shape):
    layer = built(BatchNorm(), shape[1:])
    with pytest.raises(ValueError, match=r"batchnorm.*" + r"\(" + ", ".join(map(str, shape)) + r"\)"):
        layer.forward(randn(shape, 13), training=True)


def test_batch_of_one_works_in_eval_mode():
    layer = built(BatchNorm(), (5,))
    randomize(layer, 14)
    x = randn((1, 5), 15)
    y = layer.forward(x, training=False)
    expected = (layer.gamma.data * (x[0] - layer.running_mean) / np.sqrt(layer.running_var + EPS)
                + layer.beta.data)
    np.testing.assert_allclose(y[0], expected, rtol=1e-12)


def test_network_batch_of_one_in_training_raises_and_predicts_in_eval():
    net = Network(5, seed=0)
    net.add_fc_layer(4)
    net.add_batchnorm_layer()
    net.add_relu_layer()
    with pytest.raises(ValueError, match="batchnorm1"):
        net.forward(randn((1, 5), 16), training=True)
    assert net.predict_proba(randn((1, 5), 16)).shape == (1, 4)


@pytest.mark.parametrize("per_sample", [(4, 3), (2, 3, 4, 5)])
def test_unsupported_per_sample_shapes_are_refused_at_build(per_sample):
    with pytest.raises(ValueError, match="BatchNorm"):
        BatchNorm().build(per_sample, np.random.default_rng(0), np.float64)
    net = Network(per_sample)
    with pytest.raises(ValueError, match=str(per_sample).replace("(", r"\(").replace(")", r"\)")):
        net.add_batchnorm_layer()


def test_wrong_input_shape_names_the_layer():
    layer = built(BatchNorm(), (5,))
    with pytest.raises(ValueError, match=r"batchnorm.*\(N, 5\)"):
        layer.forward(randn((3, 6), 0), training=True)


# -- dtypes and persistence ----------------------------------------------------------------------
def bn_net(dtype=np.float32, seed=0):
    net = Network(6, seed=seed, dtype=dtype)
    net.add_fc_layer(8)
    net.add_batchnorm_layer()
    net.add_relu_layer()
    net.add_fc_layer(3)
    net.add_softmax_layer()
    return net


def bn_data(n=40, seed=0):
    rng = np.random.default_rng(seed)
    X = (2.0 + 3.0 * rng.standard_normal((n, 6))).astype(np.float32)
    return X, np.argmax(X @ rng.standard_normal((6, 3)), axis=1)


def test_float32_stays_float32():
    X, y = bn_data()
    net = bn_net(np.float32)
    net.fit(X, y, epochs=2, batch_size=8, optimizer=SGD(lr=0.05), verbose=0)
    bn = net.layers[1]
    for arr in (bn.gamma.data, bn.beta.data, bn.gamma.grad, bn.beta.grad, bn.running_mean, bn.running_var):
        assert arr.dtype == np.float32
    assert net.forward(X, training=True).dtype == np.float32
    assert net.forward(X).dtype == np.float32
    # and on images, layer by itself
    layer = built(BatchNorm(), (3, 4, 4), dtype=np.float32)
    x = randn((2, 3, 4, 4), 1).astype(np.float32)
    assert layer.forward(x, training=True).dtype == np.float32
    assert layer.backward(np.ones_like(x)).dtype == np.float32
    assert layer.running_mean.dtype == np.float32 and layer.running_var.dtype == np.float32
    assert layer.forward(x, training=False).dtype == np.float32


def test_running_statistics_survive_save_and_load(tmp_path):
    X, y = bn_data()
    net = bn_net()
    net.fit(X, y, epochs=2, batch_size=8, optimizer=SGD(lr=0.05), verbose=0)
    bn = net.layers[1]
    assert not np.allclose(bn.running_mean, 0) and not np.allclose(bn.running_var, 1)  # they moved
    path = tmp_path / "bn.pickle"
    net.save(path)
    loaded = Network.load(path)
    lbn = loaded.layers[1]
    assert isinstance(lbn, BatchNorm)
    np.testing.assert_array_equal(lbn.running_mean, bn.running_mean)
    np.testing.assert_array_equal(lbn.running_var, bn.running_var)
    np.testing.assert_array_equal(lbn.gamma.data, bn.gamma.data)
    np.testing.assert_array_equal(lbn.beta.data, bn.beta.data)
    np.testing.assert_array_equal(loaded.predict_proba(X), net.predict_proba(X))


def test_network_astype_casts_running_statistics():
    X, y = bn_data()
    net = bn_net(np.float32)
    net.fit(X, y, epochs=1, batch_size=8, optimizer=SGD(lr=0.05), verbose=0)
    bn = net.layers[1]
    rm32, rv32 = bn.running_mean.copy(), bn.running_var.copy()
    net.astype(np.float64)
    for arr in (bn.gamma.data, bn.beta.data, bn.running_mean, bn.running_var):
        assert arr.dtype == np.float64
    np.testing.assert_array_equal(bn.running_mean, rm32.astype(np.float64))
    np.testing.assert_array_equal(bn.running_var, rv32.astype(np.float64))
    assert net.forward(X).dtype == np.float64
    net.forward(X, training=True)
    assert bn.running_mean.dtype == np.float64 and bn.running_var.dtype == np.float64
