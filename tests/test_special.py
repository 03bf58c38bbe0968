"""``nnscratch.special``: erf and erfc against Python's ``math.erf`` / ``math.erfc``.

The bounds are the measured errors with about one ulp to spare; a short
approximation (Abramowitz & Stegun 7.1.26, error 1.5e-7) or erfc's
``e^{-x²}`` taken without Cody's split (error ~x² ulp) fails them.
"""
import ast
import math
from pathlib import Path

import numpy as np
import pytest

from nnscratch import special
from nnscratch.special import erf, erfc

BOUNDARIES = [special.THRESH, 0.5, 4.0]
ERF_BOUND = 7e-16      # relative to math.erf; measured 4.6e-16 (glibc is itself ~1.5e-16 off)


def neighbours(points, steps=3):
    """Each point and its negative, with their ``steps`` nearest floats on either side."""
    out = []
    for p in points:
        for v in (p, -p):
            below, above = [v], [v]
            for _ in range(steps):
                below.append(np.nextafter(below[-1], -np.inf))
                above.append(np.nextafter(above[-1], np.inf))
            out += below[1:] + above
    return np.array(out)


def rel_error(got, expected):
    return np.abs(got - expected) / np.abs(expected)


@pytest.fixture(scope="module")
def grid():
    """A dense grid over [-30, 30], random points in [-6, 6] and the range boundaries."""
    rng = np.random.default_rng(0)
    return np.concatenate([np.linspace(-30.0, 30.0, 600_001), rng.uniform(-6.0, 6.0, 100_000),
                           neighbours(BOUNDARIES)])


def test_erf_is_within_4_ulp_of_math_erf_on_a_dense_grid_over_minus_30_to_30(grid):
    expected = np.array([math.erf(v) for v in grid])
    got = erf(grid)
    nonzero = expected != 0
    assert rel_error(got[nonzero], expected[nonzero]).max() <= ERF_BOUND
    assert np.all(got[~nonzero] == 0)
    assert np.abs(got - expected).max() <= 4 * np.spacing(np.abs(expected)).max()


def test_erf_is_exact_where_math_erf_is_plus_or_minus_one(grid):
    beyond = np.abs(grid) >= 6.0
    assert np.all(erf(grid[beyond]) == np.sign(grid[beyond]))


def test_erf_of_tiny_and_subnormal_values_is_2x_over_root_pi():
    tiny = np.array([1e-300, 1e-200, 1e-20, 1e-10, 2.2250738585072014e-308, 1e-310, 5e-324])
    tiny = np.concatenate([tiny, -tiny])
    expected = np.array([math.erf(v) for v in tiny])
    got = erf(tiny)
    normal = np.abs(tiny) >= 2.2250738585072014e-308
    assert rel_error(got[normal], expected[normal]).max() <= 2.3e-16
    assert np.all(np.abs(got - expected) <= np.spacing(np.abs(expected)))      # subnormals: one unit


def test_erf_agrees_with_math_erf_across_the_range_boundaries():
    x = neighbours(BOUNDARIES, steps=50)
    expected = np.array([math.erf(v) for v in x])
    assert rel_error(erf(x), expected).max() <= ERF_BOUND


def test_erfc_keeps_its_relative_accuracy_where_1_minus_erf_cancels():
    """On [0.5, 26.5] erfc falls from 0.48 to 1e-307: 1 - erf(x) has no digits left past 6."""
    x = np.concatenate([np.linspace(0.5, 6.0, 55_001), np.linspace(6.0, 26.5, 20_501),
                        neighbours([special.THRESH, 4.0])])
    expected = np.array([math.erfc(v) for v in x])
    assert rel_error(erfc(x), expected).max() <= 1.5e-15                       # measured 1.06e-15
    middle = x <= 6.0
    assert rel_error(1.0 - erf(x[middle]), expected[middle]).max() > 1e-6      # what erfc is for


def test_erfc_of_negative_and_small_arguments_is_1_minus_erf():
    x = np.linspace(-6.0, 0.5, 65_001)
    expected = np.array([math.erfc(v) for v in x])
    assert rel_error(erfc(x), expected).max() <= 6e-16                         # measured 4.6e-16


def test_erfc_underflows_to_zero_past_27_and_never_goes_negative():
    x = np.linspace(26.0, 40.0, 1401)
    got = erfc(x)
    assert np.all(got >= 0) and np.all(got[x >= 27.3] == 0) and erfc(np.inf) == 0 and erfc(-np.inf) == 2


def test_erf_is_odd_exactly(grid):
    assert np.array_equal(erf(-grid), -erf(grid))
    assert math.copysign(1.0, erf(-0.0)) == -1.0 and erf(0.0) == 0.0


def test_nan_gives_nan_and_infinities_give_plus_or_minus_one():
    got = erf(np.array([np.nan, np.inf, -np.inf, 0.0]))
    assert np.isnan(got[0]) and list(got[1:]) == [1.0, -1.0, 0.0]
    assert np.isnan(erfc(np.nan)) and erfc(0.0) == 1.0


@pytest.mark.parametrize("f", [erf, erfc])
def test_the_result_has_the_inputs_float_dtype_and_shape(f):
    x32 = np.linspace(-3, 3, 24, dtype=np.float32).reshape(2, 3, 4)
    y32 = f(x32)
    assert y32.dtype == np.float32 and y32.shape == (2, 3, 4)
    expected = np.array([getattr(math, f.__name__)(v) for v in x32.ravel().astype(float)]).reshape(2, 3, 4)
    assert np.array_equal(y32, expected.astype(np.float32))                     # rounded once, from float64
    assert f(np.arange(3)).dtype == np.float64 and f(np.float16(0.5)).dtype == np.float16
    assert isinstance(f(0.5), np.float64) and f(np.array(0.5)).shape == ()
    assert f(np.empty((0, 3))).shape == (0, 3)


def test_a_strided_view_gives_the_same_values_as_a_copy():
    x = np.linspace(-5, 5, 401 * 499).reshape(401, 499)[:, ::3].T
    assert np.array_equal(erf(x), erf(x.copy()))


def test_erf_is_increasing_and_erfc_decreasing_on_a_fine_grid():
    x = np.linspace(-7.0, 7.0, 1_400_001)                                      # steps of 1e-5
    assert np.all(np.diff(erf(x)) >= 0) and np.all(np.diff(erfc(x)) <= 0)


def test_complex_input_is_refused():
    with pytest.raises(TypeError, match="real numbers"):
        erf(np.array([1 + 1j]))


def test_special_imports_nothing_of_nnscratch():
    """So any part of the library, the autodiff engine included, can use it."""
    tree = ast.parse(Path(special.__file__).read_text())
    imports = [node for node in ast.walk(tree) if isinstance(node, (ast.Import, ast.ImportFrom))]
    names = {alias.name for node in imports for alias in node.names} | {node.module for node in imports
                                                                          if isinstance(node, ast.ImportFrom)}
    assert all(node.level == 0 for node in imports if isinstance(node, ast.ImportFrom))
    assert names <= {"math", "numpy"}, names


def abramowitz_stegun_7_1_26(x):
    """The five-term approximation (|error| <= 1.5e-7) that these tests must reject."""
    t = 1.0 / (1.0 + 0.3275911 * np.abs(x))
    poly = t * (0.254829592 + t * (-0.284496736 + t * (1.421413741 + t * (-1.453152027 + t * 1.061405429))))
    return np.sign(x) * (1.0 - poly * np.exp(-x * x))


def test_the_accuracy_bounds_would_reject_a_short_approximation():
    x = np.linspace(-6.0, 6.0, 10_001)
    expected = np.array([math.erf(v) for v in x])
    nonzero = expected != 0
    assert rel_error(abramowitz_stegun_7_1_26(x)[nonzero], expected[nonzero]).max() > 1e6 * ERF_BOUND
