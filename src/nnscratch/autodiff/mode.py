"""Grad mode: whether operations are being recorded.

Recording is on by default. ``no_grad()`` turns it off (inference, optimizer
updates, and every vector-Jacobian product of a plain ``backward()``);
``enable_grad()`` turns it back on inside a ``no_grad`` block. Both work as
context managers and as decorators::

    with no_grad():
        y = x * 2          # y.requires_grad is False, nothing is recorded

A second piece of state counts how many functional transforms (``grad``,
``jacobian``...) are currently running ``f``. When one runs inside another,
the inner one must record its own backward pass so the outer one can
differentiate it (see ``functional.py``).
"""
import contextlib
import threading


class _State(threading.local):
    # Class attributes are the per-thread defaults.
    enabled = True   # record operations?
    depth = 0        # functional transforms currently evaluating their function


_state = _State()


def is_grad_enabled():
    """True when new operations are recorded in the graph."""
    return _state.enabled


@contextlib.contextmanager
def set_grad_enabled(mode):
    """Record operations (``mode=True``) or not, inside the block; restores the previous mode."""
    previous = _state.enabled
    _state.enabled = bool(mode)
    try:
        yield
    finally:
        _state.enabled = previous


def no_grad():
    """Context manager (and decorator): nothing computed inside is recorded."""
    return set_grad_enabled(False)


def enable_grad():
    """Context manager (and decorator): record operations, even inside ``no_grad``."""
    return set_grad_enabled(True)


@contextlib.contextmanager
def transform_depth():
    """Mark that a functional transform is evaluating its function (nesting counter)."""
    _state.depth += 1
    try:
        yield
    finally:
        _state.depth -= 1


def inside_transform():
    """True while some ``grad``/``jacobian`` is evaluating its function."""
    return _state.depth > 0
