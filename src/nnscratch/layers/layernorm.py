"""Layer normalization (Ba, Kiros & Hinton 2016), over the last axis of each position."""
import numpy as np

from .base import Layer, Parameter, column_sums, size_of


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
        rows = x.reshape(-1, E)
        per_row = self._per_row(E, x.dtype)                              # (E,) of 1/E
        x_hat = self.buffer("x_hat", rows.shape, x.dtype)                # in place from here on (no temporaries)
        np.subtract(rows, (rows @ per_row)[:, None], out=x_hat)           # x - μ, μ a row sum by BLAS
        squares = self.buffer("squares", rows.shape, x.dtype)
        np.multiply(x_hat, x_hat, out=squares)
        var = (squares @ per_row)[:, None]                                # σ² (M, 1), biased
        inv_std = 1.0 / np.sqrt(var + x.dtype.type(self.eps))             # (M, 1)
        x_hat *= inv_std                                                  # x̂ (M, E)
        self._cache = (x_hat, inv_std)
        y = x_hat * self.gamma.data
        y += self.beta.data
        return y.reshape(x.shape)

    def _per_row(self, E, dtype):
        """A vector of 1/E: ``rows @ it`` is each row's mean.

        *Row sums as matrix-vector products*: BLAS sums the rows of a (4096, 128)
        float32 array several times faster than ``np.sum(axis=-1)`` or ``np.mean``
        (measured in benchmarks/README.md); the same for the column sums of the
        backward (``column_sums``).
        """
        return np.full(E, 1.0 / E, dtype=dtype)

    def backward(self, dy):
        x_hat, inv_std = self._cache
        E = dy.shape[-1]
        rows = dy.reshape(-1, E)
        gamma = self.gamma.data
        # in the forward pass this was: y = γ ⊙ x̂ + β
        self.beta.grad = column_sums(rows)                                # Σ dy (E,)
        dy_x_hat = self.buffer("squares", rows.shape, dy.dtype)           # the forward's scratch, free now
        np.multiply(rows, x_hat, out=dy_x_hat)
        self.gamma.grad = column_sums(dy_x_hat)                                # Σ dy ⊙ x̂ (E,)
        # in the forward pass this was: x̂ = (x - μ) / sqrt(σ² + ε), with μ and σ² means over the last axis.
        # With dx̂ = dy ⊙ γ the two means are products with γ, no pass over dx̂ needed:
        #   mean(dx̂) = (dy γ) / E,   mean(dx̂ ⊙ x̂) = ((dy ⊙ x̂) γ) / E
        mean_d_x_hat = (rows @ gamma)[:, None] / E                        # (M, 1)
        mean_d_x_hat_x_hat = (dy_x_hat @ gamma)[:, None] / E              # (M, 1)
        d_x = rows * gamma                                                # dx̂ (M, E), becomes dx
        d_x -= mean_d_x_hat                                               # dx̂ - mean(dx̂)
        np.multiply(x_hat, mean_d_x_hat_x_hat, out=dy_x_hat)
        d_x -= dy_x_hat                                                   #   - x̂ ⊙ mean(dx̂ ⊙ x̂)
        d_x *= inv_std
        return d_x.reshape(dy.shape)

    def flops(self):
        return 7 * size_of(self.input_shape)
