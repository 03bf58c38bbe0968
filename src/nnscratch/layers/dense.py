"""Fully connected (dense) layer: ``y = x Wᵀ + b``."""
import numpy as np

from .base import Layer, Parameter, column_sums, size_of

#: Standard deviation of the initial weights for each scheme, from fan-in and fan-out.
INIT_STD = {
    "he": lambda fan_in, fan_out: np.sqrt(2.0 / fan_in),                # He et al. 2015, for ReLU
    "glorot": lambda fan_in, fan_out: np.sqrt(2.0 / (fan_in + fan_out)),  # Glorot & Bengio 2010
    "normal": lambda fan_in, fan_out: np.sqrt(1.0 / fan_in),            # LeCun: N(0, 1/fan_in)
}


def init_std(init, fan_in, fan_out):
    """Standard deviation for ``init`` in ``INIT_STD``, with a clear error otherwise."""
    if init not in INIT_STD:
        raise ValueError(f"init must be one of {sorted(INIT_STD)} or 'auto', got {init!r}")
    return float(INIT_STD[init](fan_in, fan_out))


class WeightInit:
    """Weight initialization for layers with a ``W`` and a fan-in/fan-out (``_fans``)."""

    def _init_weights(self, shape, rng, dtype):
        """Draw ``W`` ~ N(0, std²) for the layer's scheme ("auto" starts as He)."""
        self._scheme = "he" if self.init == "auto" else self.init
        std = init_std(self._scheme, *self._fans())
        return Parameter((std * rng.standard_normal(shape)).astype(dtype), "W")

    def set_auto_init(self, scheme):
        """Rescale freshly built ``"auto"`` weights to ``scheme`` (called by the network
        when it sees the activation that follows)."""
        if self.init != "auto" or scheme == self._scheme:
            return
        ratio = init_std(scheme, *self._fans()) / init_std(self._scheme, *self._fans())
        self.W.data *= self.W.data.dtype.type(ratio)
        self._scheme = scheme


class FullyConnected(WeightInit, Layer):
    """Dense layer ``y = x Wᵀ + b`` over the last axis.

    Shapes: ``x`` (N, D) or (N, T, D) (applied per time step), ``W`` (U, D)
    as PyTorch's ``nn.Linear.weight``, ``b`` (U,), ``y`` (N, U) or (N, T, U).

    Backward, for the flattened rows ``X`` (M, D) and ``dY`` (M, U)::

        dW = dYᵀ X      (U, D)
        db = Σ_rows dY  (U,)
        dX = dY W       (M, D)

    Parameters
    ----------
    units : int
        Output features U.
    init : {"auto", "he", "glorot", "normal"}
        Weight scheme, zero-mean normal with std ``sqrt(2/D)`` (He),
        ``sqrt(2/(D+U))`` (Glorot) or ``sqrt(1/D)`` (normal). ``"auto"`` is He,
        switched to Glorot when the network puts a sigmoid, tanh or softmax
        right after this layer.
    """

    kind = "fc"

    def __init__(self, units, init="auto"):
        super().__init__()
        if int(units) != units or units < 1:
            raise ValueError(f"units must be a positive integer, got {units!r}")
        if init != "auto":
            init_std(init, 1, 1)  # validate early
        self.units = int(units)
        self.init = init

    def _fans(self):
        return self.input_shape[-1], self.units

    def _build(self, input_shape, rng, dtype):
        self.W = self._init_weights((self.units, input_shape[-1]), rng, dtype)    # (U, D)
        self.b = Parameter(np.zeros(self.units, dtype=dtype), "b", decay=False)
        return input_shape[:-1] + (self.units,)

    def parameters(self):
        return [self.W, self.b]

    def forward(self, x, training=False):
        self.check_input(x)
        self._cache_x = x
        if x.ndim == 2:                                    # the common case, without reshapes
            y = x @ self.W.data.T                          # (N, U)
            y += self.b.data
            return y
        rows = x.reshape(-1, x.shape[-1])                  # (N*T, D)
        y = rows @ self.W.data.T                           # (N*T, U)
        y += self.b.data
        return y.reshape(x.shape[:-1] + (self.units,))     # (N, T, U)

    def backward(self, dy):
        x = self._cache_x
        rows = x if x.ndim == 2 else x.reshape(-1, x.shape[-1])        # (M, D)
        drows = dy if dy.ndim == 2 else dy.reshape(-1, self.units)     # (M, U)
        self.W.grad = drows.T @ rows                       # (U, D)
        self.b.grad = column_sums(drows)                   # (U,): Σ over rows
        if not self.needs_input_grad:
            return None
        return (drows @ self.W.data).reshape(x.shape)      # (N, ..., D)

    def flops(self):
        return 2 * size_of(self.input_shape[:-1]) * self.input_shape[-1] * self.units
