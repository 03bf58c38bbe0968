"""Inverted dropout (Srivastava et al. 2014)."""
import numpy as np

from .base import Layer


def keep_mask(rng, shape, p, dtype):
    """``m / (1 - p)`` with ``m ~ Bernoulli(1 - p)`` element-wise: the scaled keep mask of inverted dropout.

    Drawn as 16-bit integers (twice as fast as floats), so the drop
    probability is ``p`` rounded to a multiple of 1/65536.
    """
    threshold = min(round(p * 65536), 65535)  # p just below 1 must still keep some units
    keep = rng.integers(0, 65536, size=shape, dtype=np.uint16) >= threshold       # Bernoulli(1 - p)
    return keep * np.dtype(dtype).type(1.0 / (1.0 - p))


class Dropout(Layer):
    """Zero each activation with probability ``p`` in training, scaling the rest by ``1/(1-p)``.

    Training::

        m_i ~ Bernoulli(1 - p),   y = x ⊙ m / (1 - p),   dx = dy ⊙ m / (1 - p)

    Evaluation: ``y = x`` (the scaling in training keeps the expected
    activation the same, so nothing changes at test time: "inverted" dropout).
    The mask comes from the network's generator (``self.rng``), so a seed fixes
    every mask; backward reuses the mask of the last forward (see ``keep_mask``
    for how it is drawn).

    Parameters
    ----------
    p : float in [0, 1)
        Probability of dropping a unit.
    """

    kind = "dropout"
    uses_rng = True

    def __init__(self, p=0.5):
        super().__init__()
        if not 0 <= p < 1:
            raise ValueError(f"dropout probability p must be in [0, 1), got {p!r}")
        self.p = float(p)
        self.rng = None

    def _build(self, input_shape, rng, dtype):
        self.rng = rng
        return input_shape

    def forward(self, x, training=False):
        self.check_input(x)
        if not training or self.p == 0:
            self._cache_mask = None
            return x
        self._cache_mask = keep_mask(self.rng, x.shape, self.p, x.dtype)      # m / (1 - p)
        return x * self._cache_mask

    def backward(self, dy):
        return dy if self._cache_mask is None else dy * self._cache_mask
