"""The error function ``erf`` and its complement ``erfc``, vectorized in NumPy.

NumPy has no erf, and nnscratch does not depend on SciPy. These follow W. J.
Cody's CALERF ("Rational Chebyshev approximations for the error function",
Math. Comp. 23, 1969, pp. 631-638; the netlib SPECFUN routine, March 1990),
whose rationals are good to about 18 digits, below float64's rounding::

    |x| <= 0.46875      erf x  = x · A(x²) / B(x²)
    0.46875 < |x| <= 4  erfc y = e^{-y²} · C(y) / D(y)                      (y = |x|)
    |x| > 4             erfc y = e^{-y²} / y · (1/√π - z · P(z) / Q(z))    (z = 1/y²)

with erf x = sign(x) (1 - erfc |x|) beyond 0.46875 and erfc(-y) = 2 - erfc y.
``e^{-y²}`` is formed as Cody does, ``e^{-s²} · e^{-(y-s)(y+s)}`` with
``s = trunc(16 y) / 16``: ``s²`` is exact, so the argument's rounding error
(which ``exp`` would scale by y² ~ 16 at y = 4) stays small.

Accuracy: Cody's rationals are good to ~3e-17; their float64 evaluation sets
the error. Against 120-bit mpmath, erf is within 4.4e-16 relative (math.erf,
glibc: 1.5e-16) and erfc within 7.6e-16 up to x = 26.5, where it is still a
normal number (math.erfc: 4.8e-16). Against math.erf on 2.4 million points in
[-30, 30]: at most 4 ulp apart (4.6e-16), 97% bit-equal. Speed, 1e6 float64
values on one AMD EPYC core: 23 ms (np.tanh 8 ms, np.vectorize(math.erf) 150 ms).
"""
import math

import numpy as np

THRESH = 0.46875            # Cody's first break point (the paper's 0.5, moved in to 15/32)
ONE_OVER_ROOT_PI = 0.56418958354775628695
CHUNK = 1 << 15             # values per pass (see _in_chunks)

# Coefficients of Cody's CALERF, highest power first, denominators monic.
A = [1.85777706184603153e-1, 3.16112374387056560e00, 1.13864154151050156e02, 3.77485237685302021e02,
     3.20937758913846947e03]
B = [1.0, 2.36012909523441209e01, 2.44024637934444173e02, 1.28261652607737228e03, 2.84423683343917062e03]
C = [2.15311535474403846e-8, 5.64188496988670089e-1, 8.88314979438837594e00, 6.61191906371416295e01,
     2.98635138197400131e02, 8.81952221241769090e02, 1.71204761263407058e03, 2.05107837782607147e03,
     1.23033935479799725e03]
D = [1.0, 1.57449261107098347e01, 1.17693950891312499e02, 5.37181101862009858e02, 1.62138957456669019e03,
     3.29079923573345963e03, 4.36261909014324716e03, 3.43936767414372164e03, 1.23033935480374942e03]
P = [1.63153871373020978e-2, 3.05326634961232344e-1, 3.60344899949804439e-1, 1.25781726111229246e-1,
     1.60837851487422766e-2, 6.58749161529837803e-4]
Q = [1.0, 2.56852019228982242e00, 1.87295284992346047e00, 5.27905102951428412e-1, 6.05183413124413191e-2,
     2.33520497626869185e-3]
EXP_MINUS_S2 = np.array([math.exp(-(k / 16) ** 2) for k in range(441)])  # e^{-s²}, s = k/16 <= 27.5


def _horner(coefficients, t):
    """``c₀ tⁿ + c₁ tⁿ⁻¹ + ... + cₙ`` by Horner's rule (Cody's order of operations)."""
    total = coefficients[0] * t
    for c in coefficients[1:-1]:
        total += c
        total *= t
    return total + coefficients[-1]


def _erf_small(x):
    """erf x for |x| <= 0.46875: an odd rational, so exactly antisymmetric."""
    t = x * x
    return x * _horner(A, t) / _horner(B, t)


def _erfc_large(y):
    """erfc y for y > 0.46875 (NaN stays NaN; beyond 27.3, where erfc y < 5e-324, it is 0)."""
    y = np.minimum(y, 27.5)                                      # keeps y² finite (inf -> 27.5)
    scaled = np.empty_like(y)                                    # e^{y²} erfc y
    middle, tail = np.flatnonzero(y <= 4.0), np.flatnonzero(~(y <= 4.0))   # NaN goes to the tail
    ym, yt = y[middle], y[tail]
    scaled[middle] = _horner(C, ym) / _horner(D, ym)
    z = 1.0 / (yt * yt)
    scaled[tail] = (ONE_OVER_ROOT_PI - z * _horner(P, z) / _horner(Q, z)) / yt
    sixteenths = np.trunc(16.0 * y)                              # 16 s, s = trunc(16 y) / 16: s² is exact
    s = sixteenths / 16.0
    exp_minus_s2 = EXP_MINUS_S2[np.fmin(sixteenths, 440.0).astype(np.intp)]   # fmin: NaN -> a valid index
    return np.exp(-(y - s) * (y + s)) * scaled * exp_minus_s2   # e^{-y²} = e^{-s²} e^{-(y-s)(y+s)}


def _erf_1d(x):
    """erf of a 1-d float64 array. Each range is gathered by integer index: a random boolean
    mask costs 5 ms per 1e6 values to index with, ``flatnonzero`` and the gather 0.8 ms."""
    y = np.abs(x)
    small, rest = np.flatnonzero(y <= THRESH), np.flatnonzero(~(y <= THRESH))   # rest: inf, NaN too
    out = np.empty_like(x)
    out[small] = _erf_small(x[small])
    out[rest] = np.copysign(1.0 - _erfc_large(y[rest]), x[rest])
    return out


def _erfc_1d(x):
    """erfc of a 1-d float64 array, its ranges gathered as in ``_erf_1d``."""
    y = np.abs(x)
    small, rest = np.flatnonzero(y <= THRESH), np.flatnonzero(~(y <= THRESH))
    out = np.empty_like(x)
    out[small] = 1.0 - _erf_small(x[small])
    erfc_y = _erfc_large(y[rest])
    out[rest] = np.where(x[rest] > 0, erfc_y, 2.0 - erfc_y)     # erfc(-y) = 2 - erfc y
    return out


def _in_chunks(f, x):
    """``f`` (float64 1-d -> same) over ``x``, CHUNK values at a time; ``x``'s shape, its float dtype.

    Chunks keep the dozen temporaries small enough to stay in cache and be
    reused instead of freshly mapped (1e6 values: 50 ms in one pass, 24 ms so)."""
    x = np.asarray(x)
    if x.dtype.kind not in "biuf":
        raise TypeError(f"erf and erfc take real numbers, got an array of {x.dtype}")
    dtype = x.dtype if x.dtype.kind == "f" else np.dtype(np.float64)
    flat = np.asarray(x, dtype=np.float64).ravel()
    out = np.empty(flat.size)
    for start in range(0, flat.size, CHUNK):
        out[start:start + CHUNK] = f(flat[start:start + CHUNK])
    return out.reshape(x.shape).astype(dtype, copy=False)[()]


def erf(x):
    """The error function ``erf x = (2/√π) ∫₀ˣ e^{-t²} dt``, element-wise.

    Parameters
    ----------
    x : array_like of real numbers (any shape, or a scalar)

    Returns
    -------
    ndarray of ``x``'s float dtype (float64 for integers; a NumPy scalar for
    a scalar), computed in float64: within 4 ulp of ``math.erf``, odd
    exactly (``erf(-x) == -erf(x)``, ``erf(-0.0)`` is -0.0), ``erf(±inf) = ±1``,
    NaN for NaN.
    """
    return _in_chunks(_erf_1d, x)


def erfc(x):
    """The complementary error function ``erfc x = 1 - erf x``, element-wise, accurate
    relative to its value also where it is tiny (within 7.6e-16 of the true erfc up
    to x = 26.5), where ``1 - erf(x)`` has lost every digit. Dtypes as for ``erf``."""
    return _in_chunks(_erfc_1d, x)
