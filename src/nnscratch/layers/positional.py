"""Learned positional embedding: where in the sequence each vector sits."""
import numpy as np

from .base import Layer, Parameter, shape_str


class PositionalEmbedding(Layer):
    """Add a learned vector per position: x (N, T, E) -> y (N, T, E), ``y[n, t] = x[n, t] + W[t]``.

    Attention by itself does not know the order of its inputs (permuting the
    positions permutes the outputs); adding ``W[t]`` tells each vector where
    it is, as GPT-2's ``wpe`` does. ``W`` (max_len, E) starts N(0, 0.02²).

    Backward: ``dx = dy`` and ``dW[t] = Σ_n dy[n, t]`` for t < T (rows of
    positions beyond T get zero gradient).

    During generation with a key/value cache (``start_kv_cache``), each
    forward gets only the new positions and adds the rows that follow the
    ones already given.

    Parameters
    ----------
    max_len : int
        The longest sequence the layer accepts; a longer one is a ValueError.
    """

    kind = "positional"

    def __init__(self, max_len):
        super().__init__()
        if int(max_len) != max_len or max_len < 1:
            raise ValueError(f"max_len must be a positive integer, got {max_len!r}")
        self.max_len = int(max_len)

    def _build(self, input_shape, rng, dtype):
        if len(input_shape) != 2 or input_shape[-1] is None:
            raise ValueError(f"{self.name} (PositionalEmbedding) expects a sequence (N, T, E) with a known E, "
                             f"got per-sample shape {input_shape}")
        if input_shape[0] is not None and input_shape[0] > self.max_len:
            raise ValueError(f"{self.name} (PositionalEmbedding): sequences of length {input_shape[0]} are longer "
                             f"than max_len = {self.max_len}")
        self.W = Parameter((0.02 * rng.standard_normal((self.max_len, input_shape[-1]))).astype(dtype), "W",
                           decay=False)
        return input_shape

    def parameters(self):
        return [self.W]

    def forward(self, x, training=False):
        self.check_input(x)
        if x.ndim != 3:
            raise ValueError(f"{self.name} (PositionalEmbedding) expects input of shape "
                             f"{shape_str(self.input_shape)}, got {tuple(x.shape)}")
        start = self.__dict__.get("_cache_position", 0)
        T = x.shape[1]
        if start + T > self.max_len:
            raise ValueError(f"{self.name} (PositionalEmbedding): a sequence of {start + T} positions is longer "
                             f"than max_len = {self.max_len} (input {tuple(x.shape)})")
        if "_cache_position" in self.__dict__:
            self._cache_position = start + T
        self._cache_T = T
        return x + self.W.data[start:start + T]

    def backward(self, dy):
        grad = np.zeros_like(self.W.data)
        grad[:self._cache_T] = dy.sum(axis=0)
        self.W.grad = grad
        return dy if self.needs_input_grad else None

    def start_kv_cache(self):
        """Count positions across forwards (generation feeds a few new tokens at a time)."""
        self._cache_position = 0

    def stop_kv_cache(self):
        self.__dict__.pop("_cache_position", None)

    def flops(self):
        return self.input_shape[-1] * (self.input_shape[0] or 1)
