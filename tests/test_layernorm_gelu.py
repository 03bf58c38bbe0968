"""LayerNorm and GELU against independent references (their gradients are rows of test_gradient_table.py)."""
import math

import numpy as np
import pytest
from conftest import assert_rows_small, built, randn

from nnscratch import GELU, LayerNorm, Network, Quadratic
from nnscratch import autodiff as ad


def layernorm_reference(x, gamma, beta, eps):
    """PyTorch's documented nn.LayerNorm, one position at a time, in float64 Python loops."""
    flat = np.asarray(x, dtype=np.float64).reshape(-1, x.shape[-1])
    out = np.empty_like(flat)
    for i, row in enumerate(flat):
        mean = sum(row) / len(row)
        var = sum((v - mean) ** 2 for v in row) / len(row)              # biased
        out[i] = [(v - mean) / math.sqrt(var + eps) * g + b for v, g, b in zip(row, gamma, beta)]
    return out.reshape(x.shape)


@pytest.mark.parametrize("shape", [(4, 5), (3, 2, 6), (1, 1, 3)], ids=["NxE", "NxTxE", "batch1_T1"])
def test_layernorm_gives_each_position_mean_0_and_variance_1_before_gamma_and_beta(shape):
    layer = built(LayerNorm(), shape[1:])
    x = 3.0 * randn(shape, 1) + 2.0
    y = layer.forward(x)                                                # gamma 1, beta 0 at initialization
    np.testing.assert_allclose(y.mean(axis=-1), 0.0, atol=1e-12)
    eps = 1e-5
    expected_var = x.var(axis=-1) / (x.var(axis=-1) + eps)               # exact: var(x̂) = σ² / (σ² + ε)
    np.testing.assert_allclose(y.var(axis=-1), expected_var, rtol=1e-12)
    np.testing.assert_allclose(y.var(axis=-1), 1.0, rtol=1e-4)


@pytest.mark.parametrize("shape, eps", [((4, 5), 1e-5), ((3, 2, 6), 1e-2)], ids=["NxE", "NxTxE_large_eps"])
def test_layernorm_matches_pytorchs_formula_written_by_hand(shape, eps):
    layer = built(LayerNorm(eps=eps), shape[1:])
    layer.gamma.data[...] = randn(layer.gamma.data.shape, 2)
    layer.beta.data[...] = randn(layer.beta.data.shape, 3)
    x = randn(shape, 4)
    expected = layernorm_reference(x, layer.gamma.data, layer.beta.data, eps)
    np.testing.assert_allclose(layer.forward(x), expected, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(layer.forward(x, training=True), expected, rtol=1e-12, atol=1e-12)


def test_layernorm_parameters_start_as_pytorchs_and_are_not_decayed():
    layer = built(LayerNorm(), (3, 7))
    assert [p.name for p in layer.parameters()] == ["gamma", "beta"]
    np.testing.assert_array_equal(layer.gamma.data, np.ones(7))
    np.testing.assert_array_equal(layer.beta.data, np.zeros(7))
    assert not any(p.decay for p in layer.parameters())


def test_layernorm_rejects_images_and_a_bad_eps():
    with pytest.raises(ValueError, match=r"LayerNorm\) normalizes \(N, E\) or \(N, T, E\)"):
        built(LayerNorm(), (2, 3, 4))
    with pytest.raises(ValueError, match="eps must be positive"):
        LayerNorm(eps=0)


def test_layernorm_keeps_float32():
    layer = built(LayerNorm(), (5,), dtype=np.float32)
    x = randn((3, 5), 5).astype(np.float32)
    y = layer.forward(x)
    assert y.dtype == np.float32 and layer.backward(np.ones_like(y)).dtype == np.float32


def gelu_exact_reference(x):
    """x Φ(x) with Φ(x) = (1 + erf(x / √2)) / 2, one math.erf call per element."""
    return np.array([v * 0.5 * (1.0 + math.erf(v / math.sqrt(2.0))) for v in x.ravel()]).reshape(x.shape)


def test_gelu_exact_matches_x_times_the_normal_cdf_from_math_erf():
    layer = built(GELU(), (3, 4))
    x = 2.5 * randn((2, 3, 4), 6)
    np.testing.assert_allclose(layer.forward(x), gelu_exact_reference(x), rtol=1e-15, atol=1e-15)


def test_gelu_tanh_matches_its_formula():
    layer = built(GELU(approximate="tanh"), (7,))
    x = 2.5 * randn((3, 7), 7)
    expected = 0.5 * x * (1 + np.tanh(np.sqrt(2 / np.pi) * (x + 0.044715 * x ** 3)))
    np.testing.assert_allclose(layer.forward(x), expected, rtol=1e-14, atol=1e-15)


def test_the_exact_and_tanh_gelus_differ_by_less_than_1e_3_on_minus_5_to_5():
    x = np.linspace(-5.0, 5.0, 2001).reshape(1, -1)
    exact = built(GELU(), (2001,)).forward(x)
    approx = built(GELU(approximate="tanh"), (2001,)).forward(x)
    assert 0 < np.abs(exact - approx).max() < 1e-3


def test_gelu_rejects_an_unknown_approximation():
    with pytest.raises(ValueError, match="approximate must be 'none' or 'tanh', got 'sigmoid'"):
        GELU(approximate="sigmoid")


@pytest.mark.parametrize("approximate", ["none", "tanh"])
def test_gelu_keeps_float32(approximate):
    layer = built(GELU(approximate), (5,), dtype=np.float32)
    x = randn((3, 5), 8).astype(np.float32)
    y = layer.forward(x)
    assert y.dtype == np.float32 and layer.backward(np.ones_like(y)).dtype == np.float32


def test_autodiff_erf_matches_math_erf():
    """Within a few ulp (nnscratch.special.erf: at most 7e-16 from math.erf, tests/test_special.py)."""
    x = randn((3, 4), 9)
    np.testing.assert_allclose(ad.erf(x).data, np.vectorize(math.erf)(x), rtol=7e-16, atol=0)


def test_the_builders_add_a_layernorm_and_a_gelu_that_check_their_gradients():
    net = Network((3, 4), Quadratic(), seed=0, dtype=np.float64)
    net.add_fc_layer(6)
    net.add_layernorm_layer(eps=1e-3)
    net.add_gelu_layer(approximate="tanh")
    net.add_fc_layer(5)
    net.add_gelu_layer()
    kinds = [type(layer) for layer in net.layers]
    assert kinds[1:3] == [LayerNorm, GELU] and net.layers[1].eps == 1e-3
    assert net.layers[2].approximate == "tanh" and net.layers[4].approximate == "none"
    assert net.layers[1].output_shape == (3, 6)
    X, y = randn((2, 3, 4), 10), randn((2, 3, 5), 11)
    assert_rows_small(net.check_gradients(X, y, verbose=False))
    assert_rows_small(net.check_gradients(X, y, verbose=False, method="autodiff"))


def test_layernorm_backward_on_many_positions_matches_the_textbook_formula():
    """With 3 x 100 positions of 64 features (19,200 values) the column sums of the
    backward run as BLAS products (layers.base.column_sums); the gradients must equal
    the three-term formula written here with NumPy's own sums, in float64."""
    layer = built(LayerNorm(), (100, 64))
    layer.gamma.data[...] = randn(64, 5)
    x, dy = 2.0 * randn((3, 100, 64), 6) + 1.0, randn((3, 100, 64), 7)
    assert x.size >= 16384
    layer.forward(x, training=True)
    dx = layer.backward(dy)
    mean = x.mean(axis=-1, keepdims=True)
    inv_std = 1.0 / np.sqrt(x.var(axis=-1, keepdims=True) + 1e-5)
    x_hat = (x - mean) * inv_std
    d_x_hat = dy * layer.gamma.data
    want = inv_std * (d_x_hat - d_x_hat.mean(axis=-1, keepdims=True)
                      - x_hat * (d_x_hat * x_hat).mean(axis=-1, keepdims=True))
    np.testing.assert_allclose(dx, want, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(layer.gamma.grad, (dy * x_hat).reshape(-1, 64).sum(axis=0), rtol=1e-10)
    np.testing.assert_allclose(layer.beta.grad, dy.reshape(-1, 64).sum(axis=0), rtol=1e-10)
