"""Cost functions: values against hand computations, gradients against
central differences, fused gradients, numerical stability, the seed's
per-sample functions, and ``get_cost``."""
import math
import warnings

import numpy as np
from conftest import TOL, central_difference, rel_err
import pytest

from nnscratch import costs, gradcheck
from nnscratch.costs import (BinaryCrossEntropy, CrossEntropy, CrossEntropyLogits, Quadratic,
                             cross_entropy_cost, cross_entropy_cost_prime_SM, get_cost, quadratic_cost,
                             quadratic_cost_prime)
from nnscratch.layers import Sigmoid, Softmax



def softmax_rows(z):
    e = np.exp(z - z.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def sigmoid(z):
    return 1.0 / (1.0 + np.exp(-z))


def one_hot(labels, k):
    t = np.zeros((len(labels), k))
    t[np.arange(len(labels)), labels] = 1.0
    return t


# -- values on a tiny 2-sample example --------------------------------------------
A = [[0.2, 0.7, 0.1],
     [0.5, 0.3, 0.2]]
T = [[0.0, 1.0, 0.0],
     [1.0, 0.0, 0.0]]


def test_quadratic_value_by_hand():
    # ½‖a - t‖² per sample, averaged over the 2 samples.
    per_sample = [0.5 * sum((a - t) ** 2 for a, t in zip(ar, tr)) for ar, tr in zip(A, T)]
    expected = sum(per_sample) / 2
    # by hand: sample 1: ½(0.04 + 0.09 + 0.01) = 0.07; sample 2: ½(0.25 + 0.09 + 0.04) = 0.19
    assert expected == pytest.approx(0.13, rel=1e-12)
    assert Quadratic().value(np.array(A), np.array(T)) == pytest.approx(expected, rel=1e-12)


def test_cross_entropy_value_by_hand():
    per_sample = [-sum(t * math.log(a) for a, t in zip(ar, tr)) for ar, tr in zip(A, T)]
    expected = sum(per_sample) / 2
    assert expected == pytest.approx(-(math.log(0.7) + math.log(0.5)) / 2, rel=1e-12)
    assert CrossEntropy().value(np.array(A), np.array(T)) == pytest.approx(expected, rel=1e-12)


def test_cross_entropy_value_soft_targets_by_hand():
    t = [[0.25, 0.75, 0.0], [0.5, 0.0, 0.5]]
    expected = sum(-sum(ti * math.log(ai) for ai, ti in zip(ar, tr)) for ar, tr in zip(A, t)) / 2
    assert CrossEntropy().value(np.array(A), np.array(t)) == pytest.approx(expected, rel=1e-12)


def test_binary_cross_entropy_value_by_hand():
    a = [[0.9, 0.2], [0.4, 0.6]]
    t = [[1.0, 0.0], [1.0, 1.0]]
    per_sample = [-sum(ti * math.log(ai) + (1 - ti) * math.log(1 - ai) for ai, ti in zip(ar, tr))
                  for ar, tr in zip(a, t)]
    expected = sum(per_sample) / 2
    assert expected == pytest.approx(
        -(math.log(0.9) + math.log(0.8) + math.log(0.4) + math.log(0.6)) / 2, rel=1e-12)
    assert BinaryCrossEntropy().value(np.array(a), np.array(t)) == pytest.approx(expected, rel=1e-12)


def test_values_are_batch_averages():
    """Doubling the batch by repeating it leaves every cost unchanged."""
    a, t = np.array(A), np.array(T)
    for cost in (Quadratic(), CrossEntropy(), BinaryCrossEntropy()):
        v = cost.value(a, t)
        assert cost.value(np.vstack([a, a]), np.vstack([t, t])) == pytest.approx(v, rel=1e-12)
        assert isinstance(v, float)


# -- gradients against central differences ---------------------------------------
SHAPES = [(1, 1), (1, 4), (2, 3), (5, 7), (16, 10)]


def cost_example(cost, shape, seed):
    rng = np.random.default_rng(seed)
    n, k = shape
    if isinstance(cost, CrossEntropy):
        a = rng.uniform(0.05, 1.0, shape)
        a /= a.sum(axis=1, keepdims=True)
        t = one_hot(rng.integers(0, k, n), k)
        return a, t
    if isinstance(cost, BinaryCrossEntropy):
        return rng.uniform(0.05, 0.95, shape), rng.integers(0, 2, shape).astype(float)
    if isinstance(cost, CrossEntropyLogits):  # logits of any size, one-hot targets
        return 4.0 * rng.standard_normal(shape), one_hot(rng.integers(0, k, n), k)
    return rng.standard_normal(shape), rng.standard_normal(shape)


@pytest.mark.parametrize("cost", [Quadratic(), CrossEntropy(), BinaryCrossEntropy(), CrossEntropyLogits()],
                         ids=repr)
@pytest.mark.parametrize("shape", SHAPES, ids=str)
def test_gradient_matches_central_differences(cost, shape):
    a, t = cost_example(cost, shape, seed=sum(shape))
    assert gradcheck.check_cost(cost, a, t) < TOL
    # and independently of gradcheck
    num = central_difference(lambda v: cost.value(v, t), a)
    g = cost.gradient(a, t)
    assert g.shape == a.shape
    assert rel_err(g, num) < TOL


def test_cross_entropy_gradient_soft_targets():
    rng = np.random.default_rng(1)
    a = softmax_rows(rng.standard_normal((4, 6)))
    t = softmax_rows(rng.standard_normal((4, 6)))
    assert gradcheck.check_cost(CrossEntropy(), a, t) < TOL


def test_binary_cross_entropy_gradient_soft_targets():
    rng = np.random.default_rng(2)
    a, t = rng.uniform(0.05, 0.95, (3, 5)), rng.uniform(0, 1, (3, 5))
    assert gradcheck.check_cost(BinaryCrossEntropy(), a, t) < TOL


# -- fused gradients: ∂C/∂z through the activation -----------------------------------
@pytest.mark.parametrize("shape", [(1, 2), (1, 10), (3, 4), (8, 10)], ids=str)
def test_softmax_cross_entropy_fused_gradient(shape):
    rng = np.random.default_rng(shape[1])
    z = 3.0 * rng.standard_normal(shape)
    t = one_hot(rng.integers(0, shape[1], shape[0]), shape[1])
    cost = CrossEntropy()
    num = central_difference(lambda v: cost.value(softmax_rows(v), t), z)
    layer = Softmax()
    layer.build(shape[1:], np.random.default_rng(0), np.float64)
    fused = cost.fused_gradient(layer.forward(z), t)
    assert cost.fuses_with is Softmax and cost.fuses_with_layer(layer)
    assert rel_err(fused, num) < TOL
    # the closed form (softmax(z) - t) / N, from the definition
    np.testing.assert_allclose(fused, (softmax_rows(z) - t) / shape[0], rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("shape", [(1, 1), (1, 5), (4, 3), (9, 6)], ids=str)
def test_sigmoid_binary_cross_entropy_fused_gradient(shape):
    rng = np.random.default_rng(10 + shape[1])
    z = 2.0 * rng.standard_normal(shape)
    t = rng.integers(0, 2, shape).astype(float)
    cost = BinaryCrossEntropy()
    num = central_difference(lambda v: cost.value(sigmoid(v), t), z)
    layer = Sigmoid()
    layer.build(shape[1:], np.random.default_rng(0), np.float64)
    fused = cost.fused_gradient(layer.forward(z), t)
    assert cost.fuses_with is Sigmoid and cost.fuses_with_layer(layer)
    assert rel_err(fused, num) < TOL


def test_fused_equals_chain_through_activation_backward():
    """fused_gradient == activation.backward(cost.gradient) where both are finite."""
    rng = np.random.default_rng(3)
    z = rng.standard_normal((4, 5))
    t = one_hot([0, 4, 2, 2], 5)
    sm = Softmax()
    sm.build((5,), rng, np.float64)
    a = sm.forward(z)
    chained = sm.backward(CrossEntropy().gradient(a, t))
    np.testing.assert_allclose(CrossEntropy().fused_gradient(a, t), chained, rtol=1e-10, atol=1e-15)
    sg = Sigmoid()
    sg.build((5,), rng, np.float64)
    tb = rng.integers(0, 2, (4, 5)).astype(float)
    a = sg.forward(z)
    chained = sg.backward(BinaryCrossEntropy().gradient(a, tb))
    np.testing.assert_allclose(BinaryCrossEntropy().fused_gradient(a, tb), chained, rtol=1e-10, atol=1e-15)


# -- cross-entropy on logits: the softmax inside the cost ------------------------------
def logits_example(shape, seed, soft=False):
    rng = np.random.default_rng(seed)
    z = 3.0 * rng.standard_normal(shape)
    if soft:
        return z, softmax_rows(rng.standard_normal(shape))
    t = np.zeros(shape)
    np.put_along_axis(t, rng.integers(0, shape[-1], shape[:-1] + (1,)), 1.0, axis=-1)
    return z, t


@pytest.mark.parametrize("shape", [(1, 2), (3, 4), (8, 10), (2, 5, 7)], ids=str)
def test_cross_entropy_on_logits_is_cross_entropy_after_a_softmax(shape):
    """Value: the mean over the N (or N·T) predictions of -Σ t log softmax(z);
    gradient: (softmax(z) - t) / N for one-hot targets."""
    z, t = logits_example(shape, seed=shape[-1])
    cost, rows = CrossEntropyLogits(), int(np.prod(shape[:-1]))
    expected = -np.sum(t * np.log(softmax_rows(z))) / rows
    assert cost.value(z, t) == pytest.approx(expected, rel=1e-12)
    assert cost.value(z, t) == pytest.approx(CrossEntropy().value(softmax_rows(z), t), rel=1e-12)
    np.testing.assert_allclose(cost.gradient(z, t), (softmax_rows(z) - t) / rows, rtol=1e-12, atol=1e-15)
    assert rel_err(cost.gradient(z, t), central_difference(lambda v: cost.value(v, t), z)) < TOL


@pytest.mark.parametrize("shape", [(4, 6), (2, 3, 5)], ids=str)
def test_cross_entropy_on_logits_with_soft_targets_matches_central_differences(shape):
    z, t = logits_example(shape, seed=7, soft=True)
    assert gradcheck.check_cost(CrossEntropyLogits(), z, t) < TOL
    t = 0.5 * t  # rows that do not sum to 1: the gradient is s·softmax(z) - t, s = Σ_k t_k
    assert gradcheck.check_cost(CrossEntropyLogits(), z, t) < TOL


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_cross_entropy_on_logits_is_exact_at_extreme_logits(strict_fp, dtype):
    """No overflow, and a confidently wrong prediction costs its full margin
    (2000 here), where log of a rounded-to-0 probability would be floored."""
    z = np.array([[1000.0, -1000.0, 0.0], [-1000.0, 1000.0, 0.0], [1000.0, -1000.0, 0.0]], dtype=dtype)
    t = one_hot([0, 1, 1], 3).astype(dtype)
    cost = CrossEntropyLogits()
    assert cost.value(z, t) == pytest.approx(2000.0 / 3, rel=1e-6)
    assert cost.value(z[:2], t[:2]) == pytest.approx(0.0, abs=1e-12)
    g = cost.gradient(z, t)
    assert g.dtype == dtype and np.all(np.isfinite(g))
    np.testing.assert_allclose(g, (one_hot([0, 1, 0], 3) - t) / 3, rtol=1e-6, atol=0)
    np.testing.assert_allclose(cost.probabilities(z), one_hot([0, 1, 0], 3), atol=0)


def test_only_the_probability_costs_fuse_with_an_output_layer():
    layers = {cls: cls() for cls in (Softmax, Sigmoid)}
    assert [cls for cls, layer in layers.items() if CrossEntropy().fuses_with_layer(layer)] == [Softmax]
    assert [cls for cls, layer in layers.items() if BinaryCrossEntropy().fuses_with_layer(layer)] == [Sigmoid]
    for cost in (Quadratic(), CrossEntropyLogits()):
        assert not any(cost.fuses_with_layer(layer) for layer in layers.values())
    assert get_cost(cross_entropy_cost, cross_entropy_cost_prime_SM).fuses_with_layer(layers[Softmax])


# -- numerical stability at extreme logits ------------------------------------------
@pytest.fixture
def strict_fp():
    """Turn every floating-point warning into an error for the test's duration."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with np.errstate(over="raise", divide="raise", invalid="raise"):
            yield


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_softmax_cross_entropy_extreme_logits(strict_fp, dtype):
    z = np.array([[1000.0, -1000.0, 0.0],
                  [-1000.0, 1000.0, 0.0],
                  [1000.0, -1000.0, 0.0]], dtype=dtype)
    t = one_hot([0, 1, 1], 3).astype(dtype)  # the last sample puts its target on a -1000 logit
    layer = Softmax()
    layer.build((3,), np.random.default_rng(0), dtype)
    a = layer.forward(z)
    assert np.all(np.isfinite(a))
    np.testing.assert_array_equal(a, one_hot([0, 1, 0], 3))
    cost = CrossEntropy()
    loss = cost.value(a, t)
    assert np.isfinite(loss) and loss > 0
    # confident and right costs ~0
    assert cost.value(a[:2], t[:2]) == pytest.approx(0.0, abs=1e-12)
    g = cost.fused_gradient(a, t)
    assert g.dtype == dtype and np.all(np.isfinite(g))
    np.testing.assert_allclose(g, (one_hot([0, 1, 0], 3) - t) / 3, rtol=1e-6, atol=0)
    # and the layer's own backward survives the fused gradient as upstream
    assert np.all(np.isfinite(layer.backward(g)))


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_sigmoid_binary_cross_entropy_extreme_logits(strict_fp, dtype):
    z = np.array([[1000.0, -1000.0], [-1000.0, 1000.0]], dtype=dtype)
    t = np.array([[1.0, 0.0], [1.0, 0.0]], dtype=dtype)  # second sample is confidently wrong
    layer = Sigmoid()
    layer.build((2,), np.random.default_rng(0), dtype)
    a = layer.forward(z)
    np.testing.assert_array_equal(a, [[1.0, 0.0], [0.0, 1.0]])
    cost = BinaryCrossEntropy()
    loss = cost.value(a, t)
    assert np.isfinite(loss) and loss > 0
    assert cost.value(a[:1], t[:1]) == pytest.approx(0.0, abs=1e-12)
    g = cost.fused_gradient(a, t)
    assert np.all(np.isfinite(g))
    np.testing.assert_allclose(g, np.array([[0.0, 0.0], [-1.0, 1.0]]) / 2, rtol=1e-6, atol=0)


def test_stability_fixture_does_catch_warnings(strict_fp):
    """The check above would fail on an unstable formula: a naive softmax overflows here."""
    with pytest.raises(FloatingPointError):
        np.exp(np.array([1000.0]))
    with pytest.raises(FloatingPointError):
        np.log(np.array([0.0]))


# -- the seed's per-sample functions on (10, 1) columns ---------------------------------
@pytest.fixture
def column_example():
    rng = np.random.default_rng(5)
    z = rng.standard_normal((10, 1))
    a = np.exp(z) / np.exp(z).sum()  # softmax over the column
    y = np.zeros((10, 1))
    y[3] = 1.0
    return z, a, y


def test_seed_quadratic_cost(column_example):
    _, a, y = column_example
    expected = 0.5 * sum((float(a[i, 0]) - float(y[i, 0])) ** 2 for i in range(10))
    assert quadratic_cost(a, y) == pytest.approx(expected, rel=1e-12)
    prime = quadratic_cost_prime(a, y)
    assert prime.shape == (10, 1)
    np.testing.assert_allclose(prime, central_difference(lambda v: quadratic_cost(v, y), a), rtol=1e-7)


def test_seed_cross_entropy_cost(column_example):
    z, a, y = column_example
    assert cross_entropy_cost(a, y) == pytest.approx(-math.log(float(a[3, 0])), rel=1e-12)
    prime = cross_entropy_cost_prime_SM(a, y)
    assert prime.shape == (10, 1)
    # the derivative with respect to the softmax *input* z
    num = central_difference(lambda v: cross_entropy_cost(np.exp(v) / np.exp(v).sum(), y), z)
    assert rel_err(prime, num) < TOL


# -- get_cost ----------------------------------------------------------------------
@pytest.mark.parametrize("name,cls", [("quadratic", Quadratic), ("cross_entropy", CrossEntropy),
                                      ("binary_cross_entropy", BinaryCrossEntropy),
                                      ("cross_entropy_logits", CrossEntropyLogits)])
def test_get_cost_by_name_class_instance(name, cls):
    assert type(get_cost(name)) is cls
    assert type(get_cost(cls)) is cls
    inst = cls()
    assert get_cost(inst) is inst


def test_get_cost_seed_pairs():
    assert type(get_cost(quadratic_cost, quadratic_cost_prime)) is Quadratic
    assert type(get_cost(cross_entropy_cost, cross_entropy_cost_prime_SM)) is CrossEntropy
    assert type(get_cost(cross_entropy_cost)) is CrossEntropy
    assert type(get_cost(quadratic_cost)) is Quadratic


def test_get_cost_custom_pair_is_batch_averaged():
    fn = lambda a, t: float(np.sum(np.abs(a - t)))  # noqa: E731
    prime = lambda a, t: np.sign(a - t)  # noqa: E731
    c = get_cost(fn, prime)
    a, t = np.array([[1.0, -2.0], [0.5, 3.0]]), np.zeros((2, 2))
    assert c.value(a, t) == pytest.approx((1 + 2 + 0.5 + 3) / 2)
    np.testing.assert_array_equal(c.gradient(a, t), np.sign(a) / 2)
    with pytest.raises(ValueError):
        get_cost(fn)  # a custom cost needs its derivative


def test_get_cost_unknown_name_lists_choices():
    with pytest.raises(ValueError) as info:
        get_cost("hinge")
    msg = str(info.value)
    assert "hinge" in msg
    for name in ("quadratic", "cross_entropy", "binary_cross_entropy", "cross_entropy_logits"):
        assert name in msg
    assert set(costs.COSTS) == {"quadratic", "cross_entropy", "binary_cross_entropy", "cross_entropy_logits"}


def test_get_cost_rejects_non_cost():
    with pytest.raises(TypeError):
        get_cost(3.5)
