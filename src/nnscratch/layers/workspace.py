"""Arrays a layer reuses from one batch to the next instead of allocating them anew.

Why: a recurrent layer's per-batch arrays are megabytes each (the gates of
every step of a 64 x 28 x 512 batch are 3.7 MB). The C allocator hands
blocks that large back to the operating system when NumPy frees them and maps
fresh pages for the next batch, and every fresh page costs a page fault on
first touch. Measured on the LSTM's backward precomputation (15 elementwise
passes over (28, 64, 128) arrays): 4.1 ms with new arrays per call, 1.3 ms
once glibc was told to keep its memory (MALLOC_MMAP_THRESHOLD_ and
MALLOC_TRIM_THRESHOLD_ set to 64 and 256 MB), which reusing the arrays
achieves without touching the process's allocator.

A ``Workspace`` lives in a layer attribute whose name starts with ``_cache``,
so it is never saved with the network. Arrays it returns are uninitialized
and are overwritten by the next call with the same name: a layer keeps only
what its own ``backward`` reads, and returns copies to its caller.
"""
import numpy as np


class Workspace:
    """Named scratch arrays that grow to the largest size asked and are then reused."""

    def __init__(self):
        self._flat = {}

    def __call__(self, name, shape, dtype):
        """An uninitialized array of ``shape`` and ``dtype``, the same memory on every call for ``name``."""
        size = int(np.prod(shape))
        flat = self._flat.get(name)
        if flat is None or flat.size < size or flat.dtype != dtype:
            flat = self._flat[name] = np.empty(max(size, 1), dtype=dtype)
        return flat[:size].reshape(shape)
