"""Batch normalization (Ioffe & Szegedy 2015), over features or over channels."""
import numpy as np

from .base import Layer, Parameter, size_of


class BatchNorm(Layer):
    """Normalize each feature (N, D) or each channel (N, C, H, W) over the batch.

    Training, with statistics over the m = N (or N·H·W) values of a feature::

        μ = mean(x),  σ² = mean((x - μ)²)             (biased, for normalizing)
        x̂ = (x - μ) / sqrt(σ² + ε),  y = γ x̂ + β
        running_mean ← (1 - momentum) running_mean + momentum μ
        running_var  ← (1 - momentum) running_var  + momentum σ² m / (m - 1)   (unbiased)

    Evaluation uses ``running_mean`` and ``running_var`` instead of μ and σ².
    These follow PyTorch's documented ``BatchNorm1d/2d`` (momentum 0.1,
    ε = 1e-5, unbiased running variance), so weights and statistics move
    between the two.

    Backward in training (μ and σ² depend on every x in the batch)::

        dβ = Σ dy,   dγ = Σ dy ⊙ x̂
        dx = γ / (m sqrt(σ² + ε)) · (m dy - dβ - x̂ dγ)

    Parameters
    ----------
    momentum : float
        Weight of the new batch in the running averages.
    eps : float
        Added to the variance for stability.
    """

    kind = "batchnorm"

    def __init__(self, momentum=0.1, eps=1e-5):
        super().__init__()
        if not 0 <= momentum <= 1:
            raise ValueError(f"momentum must be in [0, 1], got {momentum!r}")
        self.momentum, self.eps = float(momentum), float(eps)

    def _build(self, input_shape, rng, dtype):
        if len(input_shape) not in (1, 3):
            raise ValueError(f"{self.name} (BatchNorm) normalizes (N, D) or (N, C, H, W) input, "
                             f"got per-sample shape {input_shape}")
        features = input_shape[0]
        self.gamma = Parameter(np.ones(features, dtype=dtype), "gamma", decay=False)
        self.beta = Parameter(np.zeros(features, dtype=dtype), "beta", decay=False)
        self.running_mean = np.zeros(features, dtype=dtype)
        self.running_var = np.ones(features, dtype=dtype)
        self.num_batches_tracked = 0
        # statistics over every axis but the feature/channel axis 1
        self._axes = (0,) if len(input_shape) == 1 else (0, 2, 3)
        self._stat_shape = (1, features) if len(input_shape) == 1 else (1, features, 1, 1)
        return input_shape

    def parameters(self):
        return [self.gamma, self.beta]

    def buffers(self):
        return ("running_mean", "running_var")

    def astype(self, dtype):
        super().astype(dtype)
        self.running_mean = self.running_mean.astype(dtype)
        self.running_var = self.running_var.astype(dtype)
        return self

    def forward(self, x, training=False):
        self.check_input(x)
        shape = self._stat_shape
        if training:
            m = x.size // x.shape[1]
            if m < 2:
                raise ValueError(f"{self.name} (BatchNorm) needs more than one value per feature in "
                                 f"training to estimate a variance, got input of shape {tuple(x.shape)}")
            mean = x.mean(axis=self._axes)                                # (C,)
            centred = x - mean.reshape(shape)
            var = np.mean(centred * centred, axis=self._axes)             # (C,), biased
            mom = self.momentum
            self.running_mean = (1 - mom) * self.running_mean + mom * mean
            self.running_var = (1 - mom) * self.running_var + mom * var * (m / (m - 1))
            self.num_batches_tracked += 1
        else:
            centred = x - self.running_mean.reshape(shape)
            var = self.running_var
        inv_std = 1.0 / np.sqrt(var + self.eps)                           # (C,)
        x_hat = centred * inv_std.reshape(shape)
        self._cache = (x_hat, inv_std, training)
        return x_hat * self.gamma.data.reshape(shape) + self.beta.data.reshape(shape)

    def backward(self, dy):
        x_hat, inv_std, training = self._cache
        shape = self._stat_shape
        self.beta.grad = dy.sum(axis=self._axes)                          # (C,)
        self.gamma.grad = (dy * x_hat).sum(axis=self._axes)               # (C,)
        scale = (self.gamma.data * inv_std).reshape(shape)
        if not training:  # fixed statistics: a per-channel affine map
            return dy * scale
        m = dy.size // dy.shape[1]
        return (scale / m) * (m * dy - self.beta.grad.reshape(shape) - x_hat * self.gamma.grad.reshape(shape))

    def flops(self):
        return 4 * size_of(self.input_shape)
