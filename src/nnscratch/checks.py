"""Checks on the data a user hands to ``fit``, ``evaluate`` and ``predict``.

Bad input is refused before any work, with a ``ValueError`` that says what was
expected and what came. Each check reads the array at most once on the good
path: ``np.isfinite(X).all()`` is one pass over a float X (17 ms for MNIST's
60000 x 784 float32 training set, AMD EPYC, NumPy 2.4: ``timeit`` of
``net._checked_batch(X_train)``, against seconds for one epoch), integer
arrays are not scanned for NaN, and ``X.max()`` on uint8 pixels takes 1 ms.
Counting and locating the bad values costs more passes, but only when there
are some.
"""
import os
import sys
import warnings

import numpy as np


def describe_index(index):
    """Where an element sits, in words: ``(12, 301)`` -> ``"sample 12, feature 301"``.

    Labels (one index) give ``"sample 12"``; images and sequences (three or
    more indices) give the full index ``"index (12, 0, 5, 7)"``.
    """
    index = tuple(int(i) for i in index)
    if len(index) == 1:
        return f"sample {index[0]}"
    if len(index) == 2:
        return f"sample {index[0]}, feature {index[1]}"
    return f"index {index}"


def require_samples(values, name, expected):
    """Refuse an array with no samples (or no values at all).

    Parameters
    ----------
    values : ndarray
    name : str, what the array is called in the message (``"X"``, ``"X_val"``)
    expected : str, the shape that was expected, e.g. ``"(N, 784)"``
    """
    if values.ndim == 0:
        raise ValueError(f"{name} must be an array of samples of shape {expected}, got the single value "
                         f"{values.item()!r}")
    if values.size == 0:
        raise ValueError(f"{name} is empty: expected at least one sample of shape {expected}, "
                         f"got an array of shape {tuple(values.shape)}")


def require_finite(values, name):
    """Refuse NaN or infinite values, saying how many there are and where the first is.

    Integer and boolean arrays cannot hold either and are not scanned.

    Example message: ``X holds 3 NaN and 1 infinite values (first at sample 12, feature 301)``.
    """
    if values.dtype.kind not in "fc" or _all_finite(values):
        return
    bad = ~np.isfinite(values)
    n_nan = int(np.count_nonzero(np.isnan(values)))
    n_inf = int(np.count_nonzero(bad)) - n_nan
    counts = " and ".join(text for count, text in ((n_nan, f"{n_nan} NaN"), (n_inf, f"{n_inf} infinite"))
                          if count)
    first = np.unravel_index(int(np.argmax(bad)), values.shape)
    raise ValueError(f"{name} holds {counts} {'value' if n_nan + n_inf == 1 else 'values'} "
                     f"(first at {describe_index(first)}): expected finite numbers only")


def _all_finite(values, chunk=1 << 18):
    """``np.isfinite(values).all()``, a chunk of 262,144 values at a time.

    The one-pass version makes a boolean array as large as ``values``: 47 MB
    for MNIST's training set, which raised the peak memory of training the
    784-50-10 MLP from 253 to 298 MB (benchmarks/bench.py, "while training");
    in chunks the temporary stays at 256 KB, and it is no slower (38 ms against
    54 ms for the one-pass check, same machine, best of 5).
    """
    flat = values.reshape(-1)
    return all(np.isfinite(flat[i:i + chunk]).all() for i in range(0, flat.size, chunk))


def warn_if_integer_pixels(values, name):
    """Warn when integers above 1 (uint8 pixels 0-255, say) go to a network that expects floats.

    Only the network's caller knows whether the first layer takes token ids
    (an Embedding); it calls this only when it does not.
    """
    if values.dtype.kind not in "iu" or values.size == 0:
        return
    top = values.max()
    if top > 1:
        warnings.warn(f"{name} holds integers up to {top} (dtype {values.dtype}), but the network expects "
                      f"floats in [0, 1]: scale it first, e.g. {name} / 255 for 8-bit pixels",
                      UserWarning, stacklevel=_stacklevel_outside_package())


def _stacklevel_outside_package():
    """The ``stacklevel`` that points a warning at the first caller outside nnscratch."""
    package = os.path.dirname(os.path.abspath(__file__))
    frame, level = sys._getframe(1), 1
    while frame is not None and os.path.abspath(frame.f_code.co_filename).startswith(package + os.sep):
        frame, level = frame.f_back, level + 1
    return level
