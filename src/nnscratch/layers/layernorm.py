"""Layer normalization (Ba, Kiros & Hinton 2016), over the last axis of each position."""
import numpy as np

from .base import Layer, Parameter, size_of


class LayerNorm(Layer):
    """Normalize each position's E features: input (N, E) or (N, T, E), batch first.

    Unlike batch norm the statistics are per position, over its last axis only,
    so training and evaluation compute the same thing and a batch of one is
    fine. With x (..., E) and μ, σ² (..., 1)::

        μ  = mean(x)                       over the last axis, (..., 1)
        σ² = mean((x - μ)²)                (..., 1), biased as in PyTorch
        x̂  = (x - μ) / sqrt(σ² + ε)        (..., E)
        y  = γ ⊙ x̂ + β                     (..., E), γ and β (E,)

    ``gamma`` starts at 1 and ``beta`` at 0, as ``weight`` and ``bias`` of
    PyTorch's ``nn.LayerNorm(E, eps=1e-5)``, so parameters move between the two.

    Backward, from dy (..., E); the sums run over every axis but the last::

        dβ = Σ dy,   dγ = Σ dy ⊙ x̂                                     (E,)
        dx̂ = dy ⊙ γ                                                     (..., E)
        dx = (1 / sqrt(σ² + ε)) ⊙ (dx̂ - mean(dx̂) - x̂ ⊙ mean(dx̂ ⊙ x̂))   (..., E)

    the means again over the last axis, (..., 1): μ and σ² depend on every
    feature of the position, which the two subtracted terms account for.

    Parameters
    ----------
    eps : float
        Added to the variance for stability.
    """

    kind = "layernorm"

    def __init__(self, eps=1e-5):
        super().__init__()
        if not eps > 0:
            raise ValueError(f"eps must be positive, got {eps!r}")
        self.eps = float(eps)

    def _build(self, input_shape, rng, dtype):
        if len(input_shape) not in (1, 2) or input_shape[-1] is None:
            raise ValueError(f"{self.name} (LayerNorm) normalizes (N, E) or (N, T, E) input with a known E, "
                             f"got per-sample shape {input_shape}")
        features = input_shape[-1]
        self.gamma = Parameter(np.ones(features, dtype=dtype), "gamma", decay=False)
        self.beta = Parameter(np.zeros(features, dtype=dtype), "beta", decay=False)
        return input_shape

    def parameters(self):
        return [self.gamma, self.beta]

    def forward(self, x, training=False):
        self.check_input(x)
        E = x.shape[-1]
        x_hat = self.buffer("x_hat", x.shape, x.dtype)                   # in place from here on (no temporaries)
        np.subtract(x, x.mean(axis=-1, keepdims=True), out=x_hat)         # x - μ
        squares = self.buffer("squares", x.shape, x.dtype)
        np.multiply(x_hat, x_hat, out=squares)
        var = squares.sum(axis=-1, keepdims=True)
        var *= x.dtype.type(1.0 / E)                                      # σ² (..., 1), biased
        inv_std = 1.0 / np.sqrt(var + x.dtype.type(self.eps))             # (..., 1)
        x_hat *= inv_std                                                  # x̂ (..., E)
        self._cache = (x_hat, inv_std)
        y = x_hat * self.gamma.data
        y += self.beta.data
        return y

    def backward(self, dy):
        x_hat, inv_std = self._cache
        E = dy.shape[-1]
        rows = dy.reshape(-1, E)
        # in the forward pass this was: y = γ ⊙ x̂ + β
        self.beta.grad = rows.sum(axis=0)                                 # (E,)
        scratch = self.buffer("squares", dy.shape, dy.dtype)              # the forward's scratch, free now
        np.multiply(dy, x_hat, out=scratch)
        self.gamma.grad = scratch.reshape(-1, E).sum(axis=0)              # (E,)
        d_x_hat = dy * self.gamma.data                                    # dx̂ (..., E), becomes dx
        # in the forward pass this was: x̂ = (x - μ) / sqrt(σ² + ε), with μ and σ² means over the last axis
        np.multiply(d_x_hat, x_hat, out=scratch)
        mean_dx_hat_x_hat = scratch.sum(axis=-1, keepdims=True) / E       # mean(dx̂ ⊙ x̂) (..., 1)
        np.multiply(x_hat, mean_dx_hat_x_hat, out=scratch)
        d_x_hat -= d_x_hat.sum(axis=-1, keepdims=True) / E               # dx̂ - mean(dx̂)
        d_x_hat -= scratch                                                #   - x̂ ⊙ mean(dx̂ ⊙ x̂)
        d_x_hat *= inv_std
        return d_x_hat

    def flops(self):
        return 7 * size_of(self.input_shape)
