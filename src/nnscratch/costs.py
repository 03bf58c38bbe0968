"""Cost functions and their derivatives.

A cost compares the network's output ``a`` (N, K) with targets ``t`` (N, K)
and is averaged over the batch: ``C = (1/N) Σ_n c(a_n, t_n)``, so gradients do
not grow with the batch size and a learning rate means the same thing at any
batch size. For sequence outputs (N, T, K) it is averaged over all N·T
predictions (so a language model's cost is per character); below, N stands
for that count.

When an output activation and a cost fit together, ``∂C/∂z`` (z = the
activation's input) is far simpler than the chain through both, and exact:
softmax + cross-entropy and sigmoid + binary cross-entropy both give
``(a - t) / N``. Each cost says which output layer it fuses with, in one
place: its ``fuses_with`` class attribute (``CrossEntropy.fuses_with =
Softmax``), tested by ``fuses_with_layer(layer)``; ``Network.train_step`` then
uses ``fused_gradient`` and skips that layer's backward.

``CrossEntropyLogits`` puts the softmax inside the cost instead (PyTorch's
``nn.CrossEntropyLoss``): the network ends with its last linear layer, and
the cost works on the logits with a stable log-sum-exp.

The seed's per-sample functions keep their names: ``quadratic_cost``,
``quadratic_cost_prime``, ``cross_entropy_cost`` and
``cross_entropy_cost_prime_SM`` (the derivative with respect to the softmax
input).
"""
import numpy as np

from .layers.activations import Sigmoid, Softmax

_TINY = {np.dtype(np.float32): np.finfo(np.float32).tiny, np.dtype(np.float64): np.finfo(np.float64).tiny}


def _tiny(dtype):
    """The smallest normal number of ``dtype`` (looked up once: this runs every batch)."""
    tiny = _TINY.get(dtype)
    return tiny if tiny is not None else np.finfo(dtype).tiny


def _rows(a):
    """How many predictions ``a`` holds: N for (N, K), N·T for sequences (N, T, K)."""
    return a.size // a.shape[-1]


def _safe_log(a):
    """``log(a)`` with ``a`` floored at the dtype's smallest normal number,
    so a probability that underflowed to 0 costs ``-log(tiny)`` (≈ 87 in
    float32) instead of infinity."""
    return np.log(np.maximum(a, _tiny(a.dtype)))


class Cost:
    """Base class: ``value(a, t)`` (a float), ``gradient(a, t)`` = ∂C/∂a, shaped like ``a``.

    ``a`` is the network's output (N, K) or (N, T, K), ``t`` the targets, shaped alike.
    """

    name = "cost"
    # The output layer class whose backward fused_gradient includes (Softmax, Sigmoid);
    # () for none: isinstance(layer, ()) is False.
    fuses_with = ()

    def value(self, a, t):
        raise NotImplementedError

    def gradient(self, a, t):
        raise NotImplementedError

    def fuses_with_layer(self, layer):
        """True when ``fused_gradient`` is this cost's gradient through ``layer``'s
        backward, so the training step may skip that backward (an isinstance
        test on ``fuses_with``: a subclass of Softmax fuses too)."""
        return isinstance(layer, self.fuses_with)

    def fused_gradient(self, a, t):
        """∂C/∂z through the fused activation ``a = f(z)``: ``(a - t) / N``."""
        return (a - t) * a.dtype.type(1.0 / _rows(a))

    def probabilities(self, out):
        """What ``Network.predict_proba`` returns for outputs ``out``: the outputs
        themselves, except for costs that work on logits (``CrossEntropyLogits``)."""
        return out

    def __repr__(self):
        return f"{type(self).__name__}()"


class Quadratic(Cost):
    """``c(a, t) = ½ ‖a - t‖²``;  ``∂C/∂a = (a - t) / N``."""

    name = "quadratic"

    def value(self, a, t):
        d = a - t
        return 0.5 * float(np.vdot(d, d)) / _rows(a)

    def gradient(self, a, t):
        return (a - t) * a.dtype.type(1.0 / _rows(a))


class CrossEntropy(Cost):
    """Categorical cross-entropy ``c(a, t) = -Σ_k t_k log a_k``.

    ``∂C/∂a = -t / (N a)``; fused with softmax, ``∂C/∂z = (a - t) / N``.
    """

    name = "cross_entropy"
    fuses_with = Softmax

    def value(self, a, t):
        return -float(np.vdot(t, _safe_log(a))) / _rows(a)

    def gradient(self, a, t):
        return -t / np.maximum(a, _tiny(a.dtype)) * a.dtype.type(1.0 / _rows(a))


class BinaryCrossEntropy(Cost):
    """``c(a, t) = -Σ_k [t_k log a_k + (1 - t_k) log(1 - a_k)]`` for independent
    probabilities ``a`` (a sigmoid output).

    ``∂C/∂a = (a - t) / (N a (1 - a))``; fused with sigmoid, ``(a - t) / N``.
    """

    name = "binary_cross_entropy"
    fuses_with = Sigmoid

    def value(self, a, t):
        return -float(np.vdot(t, _safe_log(a)) + np.vdot(1 - t, _safe_log(1 - a))) / _rows(a)

    def gradient(self, a, t):
        tiny = _tiny(a.dtype)
        return (a - t) / np.maximum(a * (1 - a), tiny) * a.dtype.type(1.0 / _rows(a))


def _softmax(z):
    """``softmax(z)`` over the last axis, ``exp(z - max z) / Σ exp(z - max z)``: every
    exponent is ≤ 0, so nothing overflows."""
    e = np.exp(z - z.max(axis=-1, keepdims=True))   # (N, ..., K)
    e /= e.sum(axis=-1, keepdims=True)
    return e


def _logsumexp(z):
    """``log Σ_k exp(z_k)`` over the last axis, as ``m + log Σ_k exp(z_k - m)`` with
    ``m = max_k z_k``: (N, ..., K) -> (N, ...)."""
    m = z.max(axis=-1, keepdims=True)                  # (N, ..., 1)
    return (m + np.log(np.exp(z - m).sum(axis=-1, keepdims=True)))[..., 0]


class CrossEntropyLogits(Cost):
    """Categorical cross-entropy on logits ``z``, the softmax inside the cost
    (PyTorch's ``nn.CrossEntropyLoss``): use it with a network that ends in
    its last linear layer, no Softmax layer.

    For logits ``z`` (N, K), or (N, T, K) per time step, and targets ``t``
    shaped alike (one-hot or soft labels), with ``s = Σ_k t_k`` (1 for one-hot):

        c(z, t) = -Σ_k t_k log softmax(z)_k = s · logsumexp(z) - Σ_k t_k z_k
        logsumexp(z) = m + log Σ_k exp(z_k - m),  m = max_k z_k   (stable: exponents ≤ 0)
        ∂C/∂z = (s · softmax(z) - t) / N          ((softmax(z) - t) / N for one-hot t)

    No probability is ever rounded to 0 and logged, so the cost stays exact
    where ``CrossEntropy`` after a softmax floors ``log`` at the smallest normal
    number; and no softmax layer's output is stored, which counts for large
    outputs (a vocabulary).

    The network's outputs are logits. ``predict_proba`` turns them into
    probabilities (``probabilities``: softmax over the last axis), so it means
    the same for a network with a Softmax layer and one without; ``predict``
    is the argmax of the logits, the same class either way; ``forward``
    returns the logits themselves, as a PyTorch model does.
    """

    name = "cross_entropy_logits"

    def value(self, z, t):
        total = float(np.vdot(t.sum(axis=-1), _logsumexp(z))) - float(np.vdot(t, z))
        return total / _rows(z)

    def gradient(self, z, t):
        g = _softmax(z)                                # (N, ..., K)
        g *= t.sum(axis=-1, keepdims=True)             # s · softmax(z)
        g -= t
        g *= z.dtype.type(1.0 / _rows(z))
        return g

    def probabilities(self, out):
        return _softmax(out)


class FunctionCost(Cost):
    """A user's per-sample pair ``(cost(a, t), cost_prime(a, t))``, applied to a
    batch and averaged: ``C = cost(a, t) / N``, ``∂C/∂a = cost_prime(a, t) / N``.
    ``cost`` must sum over every element it is given."""

    name = "custom"

    def __init__(self, fn, prime):
        self.fn, self.prime = fn, prime

    def value(self, a, t):
        return float(self.fn(a, t)) / _rows(a)

    def gradient(self, a, t):
        return np.asarray(self.prime(a, t), dtype=a.dtype) / _rows(a)


COSTS = {c.name: c for c in (Quadratic, CrossEntropy, BinaryCrossEntropy, CrossEntropyLogits)}


# -- the seed's per-sample functions (columns (K, 1) or any shape) ------------
def quadratic_cost(a, y):
    """``½ Σ (a - y)²`` over every element."""
    return 0.5 * float(np.sum((a - y) ** 2))


def quadratic_cost_prime(a, y):
    """Derivative of ``quadratic_cost`` with respect to ``a``: ``a - y``."""
    return a - y


def cross_entropy_cost(a, y):
    """``-Σ y log a`` over every element (``a`` a softmax output)."""
    return -float(np.sum(y * _safe_log(np.asarray(a, dtype=float))))


def cross_entropy_cost_prime_SM(a, y):
    """Derivative of ``cross_entropy_cost`` with respect to the softmax input: ``a - y``."""
    return a - y


_SEED_PAIRS = {
    (quadratic_cost, quadratic_cost_prime): Quadratic,
    (cross_entropy_cost, cross_entropy_cost_prime_SM): CrossEntropy,
    (cross_entropy_cost, None): CrossEntropy,
    (quadratic_cost, None): Quadratic,
}


def get_cost(cost, cost_prime=None):
    """Resolve a cost given as a name, a ``Cost``, or the seed's function pair."""
    if isinstance(cost, Cost):
        return cost
    if isinstance(cost, str):
        if cost not in COSTS:
            raise ValueError(f"cost must be one of {sorted(COSTS)}, got {cost!r}")
        return COSTS[cost]()
    if isinstance(cost, type) and issubclass(cost, Cost):
        return cost()
    if callable(cost):
        known = _SEED_PAIRS.get((cost, cost_prime))
        if known is not None:
            return known()
        if cost_prime is None:
            raise ValueError("a custom cost function needs its derivative: Network(shape, cost, cost_prime)")
        return FunctionCost(cost, cost_prime)
    raise TypeError(f"cost must be a name, a Cost or a function, got {type(cost).__name__}")
