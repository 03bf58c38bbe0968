"""Element-wise activations and softmax.

Each element-wise layer computes ``y = f(x)`` and backpropagates
``dx = dy ⊙ f'(x)``, with ``f'`` written from the cached output where that is
cheaper (sigmoid, tanh, ReLU).
"""
import math

import numpy as np

from ..special import erf  # GELU's erf (and importable from here, as before)
from .base import Layer, size_of


class Activation(Layer):
    """Shape-preserving layer with no parameters.

    ``init_family`` tells a preceding dense or conv layer which weight scale
    suits this nonlinearity (He for the ReLU family, Glorot for saturating ones).
    """

    init_family = "he"

    def forward(self, x, training=False):
        self.check_input(x)
        y = self._f(x)
        self._cache_y = y
        return y

    def flops(self):
        return size_of(self.input_shape)


class Sigmoid(Activation):
    """``σ(x) = 1 / (1 + e^{-x})``, ``σ'(x) = σ(1 - σ)``.

    Computed as ``(1 + tanh(x/2)) / 2``, which is the same function but never
    overflows (``e^{-x}`` does for x < -88 in float32).
    """

    kind = "sigmoid"
    init_family = "glorot"

    def _f(self, x):
        return 0.5 * (np.tanh(0.5 * x) + 1.0)

    def backward(self, dy):
        y = self._cache_y
        return dy * y * (1.0 - y)


class Tanh(Activation):
    """``tanh(x)``, with derivative ``1 - tanh²(x)``."""

    kind = "tanh"
    init_family = "glorot"

    def _f(self, x):
        return np.tanh(x)

    def backward(self, dy):
        y = self._cache_y
        return dy * (1.0 - y * y)


class ReLU(Activation):
    """``max(x, 0)``; its derivative is 1 where the output is positive, else 0."""

    kind = "relu"

    def _f(self, x):
        return np.maximum(x, 0)

    def backward(self, dy):
        return dy * (self._cache_y > 0)


class LeakyReLU(Activation):
    """``x`` for x > 0, ``αx`` otherwise (α = ``negative_slope``, 0.01 as in PyTorch)."""

    kind = "leaky_relu"

    def __init__(self, negative_slope=0.01):
        super().__init__()
        if not 0 <= negative_slope < 1:
            raise ValueError(f"negative_slope must be in [0, 1), got {negative_slope!r}")
        self.negative_slope = float(negative_slope)

    def forward(self, x, training=False):
        self.check_input(x)
        self._cache_positive = x > 0
        return np.where(self._cache_positive, x, x * self.negative_slope)

    def backward(self, dy):
        return np.where(self._cache_positive, dy, dy * self.negative_slope)


class GELU(Activation):
    """Gaussian error linear unit (Hendrycks & Gimpel 2016), as PyTorch's ``nn.GELU``.

    ``approximate="none"``, exact, with Φ and φ the standard normal cdf and pdf::

        y = x Φ(x),   Φ(x) = (1 + erf(x / √2)) / 2
        dy/dx = Φ(x) + x φ(x),   φ(x) = e^{-x²/2} / √(2π)

    ``approximate="tanh"``, with c = √(2/π) and k = 0.044715::

        u = c (x + k x³),   y = ½ x (1 + tanh u)
        dy/dx = ½ (1 + tanh u) + ½ x (1 - tanh² u) c (1 + 3k x²)

    The two differ by less than 1e-3 everywhere. The exact form's erf is
    ``nnscratch.special.erf`` (Cody's rationals in NumPy, within 4.4e-16 of
    the true erf): 1e6 values take 23 ms, against 8 ms for ``np.tanh``.
    """

    kind = "gelu"

    def __init__(self, approximate="none"):
        super().__init__()
        if approximate not in ("none", "tanh"):
            raise ValueError(f"GELU approximate must be 'none' or 'tanh', got {approximate!r}")
        self.approximate = approximate

    def forward(self, x, training=False):
        self.check_input(x)
        self._cache_x = x
        if self.approximate == "tanh":
            # u = c (x + k x³) = x (c + ck x²), built in place in one reused array (no temporaries)
            c = x.dtype.type(math.sqrt(2.0 / math.pi))
            tanh_u = self.buffer("tanh_u", x.shape, x.dtype)
            np.multiply(x, x, out=tanh_u)
            tanh_u *= c * x.dtype.type(0.044715)
            tanh_u += c
            tanh_u *= x
            np.tanh(tanh_u, out=tanh_u)                                           # tanh u
            self._cache_tanh_u = tanh_u
            y = tanh_u + x.dtype.type(1.0)
            y *= x
            y *= x.dtype.type(0.5)                                                # ½ x (1 + tanh u)
            return y
        self._cache_cdf = 0.5 * (1.0 + erf(x / math.sqrt(2.0)))                  # Φ(x)
        return x * self._cache_cdf

    def backward(self, dy):
        x = self._cache_x
        if self.approximate == "tanh":
            # dy/dx = ½ (1 + tanh u) + ½ x (1 - tanh² u) c (1 + 3k x²), in place: ten passes, one new array
            one, c, tanh_u = x.dtype.type(1.0), x.dtype.type(math.sqrt(2.0 / math.pi)), self._cache_tanh_u
            grad = x * x
            grad *= c * x.dtype.type(3 * 0.044715)
            grad += c
            grad *= x                                                             # x du/dx
            sech2 = self.buffer("sech2", x.shape, x.dtype)
            np.multiply(tanh_u, tanh_u, out=sech2)
            np.subtract(one, sech2, out=sech2)                                    # 1 - tanh² u
            grad *= sech2
            grad += tanh_u
            grad += one
            grad *= x.dtype.type(0.5)                                             # dy/dx
            grad *= dy
            return grad
        pdf = np.exp(-0.5 * x * x) / math.sqrt(2.0 * math.pi)                   # φ(x)
        return dy * (self._cache_cdf + x * pdf)

    def flops(self):
        return 8 * size_of(self.input_shape)


class Softmax(Activation):
    """Softmax over the last axis: ``y_k = e^{x_k} / Σ_j e^{x_j}``.

    Stable: the row maximum is subtracted first, which changes nothing
    mathematically but keeps ``e^x`` ≤ 1, so logits of ±1000 are fine.
    Backward (the Jacobian-vector product of ``diag(y) - y yᵀ``)::

        dx = y ⊙ (dy - Σ_k dy_k y_k)

    With the cross-entropy cost the network skips this and uses the fused
    gradient ``(y - t) / N`` directly (see ``costs.CrossEntropy``).
    """

    kind = "softmax"
    init_family = "glorot"

    def _f(self, x):
        e = x - x.max(axis=-1, keepdims=True)
        np.exp(e, out=e)  # in place: e is a fresh array, and this runs every batch
        e /= e.sum(axis=-1, keepdims=True)
        return e

    def backward(self, dy):
        y = self._cache_y
        return y * (dy - (dy * y).sum(axis=-1, keepdims=True))

    def flops(self):
        return 3 * size_of(self.input_shape)
