"""Float64 finite-difference checks of every layer's backward pass.

Each layer's ``backward`` (input gradient and every parameter's ``.grad``) is
checked with ``gradcheck.check_layer``; FullyConnected and Softmax are also
checked by a central difference written here, so the suite does not only trust
``gradcheck``. A deliberately wrong backward must fail the same check.
"""
import numpy as np
import pytest
from conftest import (TOL, assert_all_small, away_from_zero, built, central_difference, give_biases_values,
                      randn, rel_err)

from nnscratch import gradcheck
from nnscratch.layers import FullyConnected, LeakyReLU, ReLU, Sigmoid, Softmax, Tanh

# (N, D, U): a batch of one, odd sizes, a larger one.
DENSE_SHAPES = [(1, 1, 1), (1, 4, 3), (3, 7, 5), (16, 20, 12)]
# (N, T, D, U): sequences, the layer applied per time step.
SEQ_SHAPES = [(1, 1, 3, 2), (2, 4, 3, 5), (5, 3, 7, 4)]
# Per-sample input shapes for the element-wise layers and softmax.
ACT_SHAPES = [(1,), (7,), (2, 5), (4, 3, 6)]  # with the batch sizes below
ACT_BATCH = {(1,): 1, (7,): 3, (2, 5): 1, (4, 3, 6): 8}


# -- FullyConnected -----------------------------------------------------------
@pytest.mark.parametrize("N,D,U", DENSE_SHAPES)
def test_fully_connected_2d(N, D, U):
    layer = built(FullyConnected(U), (D,))
    give_biases_values(layer, 1)
    errors = gradcheck.check_layer(layer, randn((N, D), 2))
    assert_all_small(errors, {"input", "W", "b"})


@pytest.mark.parametrize("N,T,D,U", SEQ_SHAPES)
def test_fully_connected_3d(N, T, D, U):
    layer = built(FullyConnected(U), (T, D))
    give_biases_values(layer, 3)
    x = randn((N, T, D), 4)
    assert layer.forward(x).shape == (N, T, U)
    errors = gradcheck.check_layer(layer, x)
    assert_all_small(errors, {"input", "W", "b"})


@pytest.mark.parametrize("init", ["he", "glorot", "normal"])
def test_fully_connected_every_init(init):
    layer = built(FullyConnected(5, init=init), (7,))
    assert_all_small(gradcheck.check_layer(layer, randn((3, 7), 5)), {"input", "W", "b"})


# -- element-wise activations and softmax ---------------------------------------
SMOOTH = [Sigmoid, Tanh, Softmax]
KINKED = [ReLU, LeakyReLU, lambda: LeakyReLU(0.2)]


@pytest.mark.parametrize("make", SMOOTH, ids=lambda m: m.__name__)
@pytest.mark.parametrize("shape", ACT_SHAPES, ids=str)
def test_smooth_activation(make, shape):
    layer = built(make(), shape)
    x = 2.0 * randn((ACT_BATCH[shape],) + shape, 6)
    assert_all_small(gradcheck.check_layer(layer, x), {"input"})


@pytest.mark.parametrize("make", KINKED, ids=["relu", "leaky_relu", "leaky_relu_0.2"])
@pytest.mark.parametrize("shape", ACT_SHAPES, ids=str)
def test_kinked_activation(make, shape):
    layer = built(make(), shape)
    x = away_from_zero((ACT_BATCH[shape],) + shape, 7)
    assert_all_small(gradcheck.check_layer(layer, x), {"input"})


def test_kinked_activation_sees_both_sides():
    """The inputs used above must contain negatives and positives, or the
    negative-side slope is never exercised."""
    x = away_from_zero((8, 4, 3, 6), 7)
    assert (x > 0.1).any() and (x < -0.1).any() and not (np.abs(x) <= 0.1).any()


def test_softmax_own_backward_with_large_logits():
    """Softmax's own Jacobian-vector product, not the fused CE gradient,
    at logits that would overflow a naive exp."""
    layer = built(Softmax(), (5,))
    x = randn((4, 5), 8) + np.array([[300.0], [-300.0], [0.0], [700.0]])
    assert_all_small(gradcheck.check_layer(layer, x), {"input"})


# -- independent central differences (not through gradcheck) ------------------


@pytest.mark.parametrize("x_shape", [(3, 7), (2, 4, 7), (1, 7)])
def test_fully_connected_hand_rolled(x_shape):
    U, D = 5, x_shape[-1]
    layer = built(FullyConnected(U), x_shape[1:])
    give_biases_values(layer, 9)
    x = randn(x_shape, 10)
    R = randn(x_shape[:-1] + (U,), 11)
    W0, b0 = layer.W.data.copy(), layer.b.data.copy()

    # The loss L = Σ y ⊙ R computed from the definition y = x Wᵀ + b, not from forward.
    def loss(x_, W_, b_):
        return float(np.sum((np.einsum("...d,ud->...u", x_, W_) + b_) * R))

    layer.forward(x, training=True)
    dx = layer.backward(R)
    num_dx = central_difference(lambda v: loss(v, W0, b0), x)
    num_dW = central_difference(lambda v: loss(x, v, b0), W0)
    num_db = central_difference(lambda v: loss(x, W0, v), b0)
    assert dx.shape == x.shape
    assert layer.W.grad.shape == W0.shape and layer.b.grad.shape == b0.shape
    assert rel_err(dx, num_dx) < TOL
    assert rel_err(layer.W.grad, num_dW) < TOL
    assert rel_err(layer.b.grad, num_db) < TOL

    # And the forward itself agrees with the definition (perturbed through forward).
    num_dx_fwd = central_difference(lambda v: float(np.sum(layer.forward(v) * R)), x)
    assert rel_err(dx, num_dx_fwd) < TOL


@pytest.mark.parametrize("x_shape", [(1, 4), (3, 6), (2, 3, 5)])
def test_softmax_hand_rolled(x_shape):
    layer = built(Softmax(), x_shape[1:])
    x = randn(x_shape, 12)
    R = randn(x_shape, 13)

    def softmax(v):  # from the definition, row by row over the last axis
        e = np.exp(v - v.max(axis=-1, keepdims=True))
        return e / e.sum(axis=-1, keepdims=True)

    y = layer.forward(x, training=True)
    np.testing.assert_allclose(y, softmax(x), rtol=1e-13, atol=0)
    dx = layer.backward(R)
    num = central_difference(lambda v: float(np.sum(softmax(v) * R)), x)
    assert rel_err(dx, num) < TOL


def test_sigmoid_and_tanh_values_and_slopes_by_hand():
    """Sigmoid and tanh against their definitions, and their backward against
    the closed-form derivatives σ(1-σ) and 1-tanh², at a few points."""
    x = np.array([[-3.0, -0.5, 0.0, 0.25, 4.0]])
    sig = built(Sigmoid(), (5,))
    s = 1.0 / (1.0 + np.exp(-x))
    np.testing.assert_allclose(sig.forward(x), s, rtol=1e-14)
    np.testing.assert_allclose(sig.backward(np.ones_like(x)), s * (1 - s), rtol=1e-12)
    th = built(Tanh(), (5,))
    np.testing.assert_allclose(th.forward(x), np.tanh(x), rtol=1e-14)
    np.testing.assert_allclose(th.backward(np.full_like(x, 2.0)), 2.0 / np.cosh(x) ** 2, rtol=1e-12)


# -- the check can fail ---------------------------------------------------------
class OffReLU(ReLU):
    def backward(self, dy):
        return 1.01 * super().backward(dy)


class NoBiasGradFC(FullyConnected):
    def backward(self, dy):
        dx = super().backward(dy)
        self.b.grad = np.zeros_like(self.b.data)  # forgets Σ dy
        return dx


class TransposedInputGradFC(FullyConnected):
    """dX = dY W computed with the wrong W entries (a plausible slip)."""

    def backward(self, dy):
        super().backward(dy)
        rows = dy.reshape(-1, self.units)
        W = self.W.data
        return (rows @ W[::-1]).reshape(self._cache_x.shape)


def test_gradcheck_catches_off_by_one_percent_relu():
    layer = built(OffReLU(), (7,))
    err = gradcheck.check_layer(layer, away_from_zero((3, 7), 14))["input"]
    assert err > 1e-3


def test_gradcheck_catches_missing_bias_gradient():
    layer = built(NoBiasGradFC(5), (7,))
    errors = gradcheck.check_layer(layer, randn((3, 7), 15))
    assert errors["b"] > 1e-3
    assert errors["W"] < TOL and errors["input"] < TOL  # the rest is still right


def test_gradcheck_catches_wrong_input_gradient():
    layer = built(TransposedInputGradFC(5), (7,))
    errors = gradcheck.check_layer(layer, randn((3, 7), 16))
    assert errors["input"] > 1e-3


# -- needs_input_grad ---------------------------------------------------------
@pytest.mark.parametrize("x_shape", [(3, 7), (2, 4, 7)])
def test_needs_input_grad_false_skips_dx_but_fills_param_grads(x_shape):
    layer = built(FullyConnected(5), x_shape[1:])
    layer.needs_input_grad = False
    x = randn(x_shape, 17)
    dy = randn(x_shape[:-1] + (5,), 18)
    layer.forward(x, training=True)
    assert layer.backward(dy) is None
    X, dY = x.reshape(-1, 7), dy.reshape(-1, 5)
    expected_dW = sum(np.outer(dY[m], X[m]) for m in range(len(X)))  # Σ_rows dy xᵀ
    expected_db = sum(dY[m] for m in range(len(X)))
    np.testing.assert_allclose(layer.W.grad, expected_dW, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(layer.b.grad, expected_db, rtol=1e-12, atol=1e-14)
    # The same grads as with needs_input_grad=True.
    layer.needs_input_grad = True
    layer.forward(x, training=True)
    assert layer.backward(dy).shape == x.shape
    np.testing.assert_allclose(layer.W.grad, expected_dW, rtol=1e-12, atol=1e-14)


# -- gradcheck on arrays that are not C-contiguous ----------------------------------
# A regression test: numerical_gradient once perturbed x.reshape(-1), a copy for such arrays.


def test_gradcheck_fortran_ordered_input():
    layer = built(FullyConnected(5), (7,))
    x = np.asfortranarray(randn((3, 7), 19))  # same values, column-major layout
    assert_all_small(gradcheck.check_layer(layer, x), {"input", "W", "b"})


def test_gradcheck_fortran_ordered_weight():
    layer = built(FullyConnected(5), (7,))
    # e.g. weights imported from an (in, out) matrix as ``W_in_out.T``
    layer.W.data = np.ascontiguousarray(layer.W.data.T).T
    assert not layer.W.data.flags.c_contiguous
    assert_all_small(gradcheck.check_layer(layer, randn((3, 7), 20)), {"input", "W", "b"})


def test_gradcheck_same_values_c_ordered_pass():
    """Control for the two tests above: identical values, C order."""
    layer = built(FullyConnected(5), (7,))
    layer.W.data = np.ascontiguousarray(layer.W.data)
    x = np.ascontiguousarray(np.asfortranarray(randn((3, 7), 19)))
    assert_all_small(gradcheck.check_layer(layer, x), {"input", "W", "b"})


@pytest.mark.parametrize("rows, cols", [(3, 5), (40, 409), (1, 20000), (4096, 7)])
def test_column_sums_by_blas_and_by_numpy_agree(rows, cols):
    """Both branches of layers.base.column_sums (NumPy's sum below SMALL_SUM elements,
    the product 1ᵀ rows above) give the column sums, and a dense layer's bias gradient
    on a large batch is Σ_n dy."""
    from nnscratch.layers.base import SMALL_SUM, column_sums
    a = np.random.default_rng(rows).standard_normal((rows, cols))
    np.testing.assert_allclose(column_sums(a), a.sum(axis=0), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(column_sums(a[:, ::2]), a[:, ::2].sum(axis=0), rtol=1e-12, atol=1e-12)
    assert (a.size >= SMALL_SUM) == (rows * cols >= 16384)
    layer = built(FullyConnected(200), (30,))
    layer.forward(np.random.default_rng(1).standard_normal((100, 30)), training=True)
    dy = np.random.default_rng(2).standard_normal((100, 200))                # 20,000 values: the product
    layer.backward(dy)
    np.testing.assert_allclose(layer.b.grad, dy.sum(axis=0), rtol=1e-12, atol=1e-12)
