"""The Tensor: an ndarray plus a record of how it was computed.

Define by run: every operation on Tensors computes its NumPy result at once
and, when grad mode is on and some input requires a gradient, returns a node
that remembers its inputs (``_parents``) and its vector-Jacobian product
(``_vjp``). For ``y = f(a, b)`` and the gradient ``g = ∂L/∂y`` of some scalar
``L``, the VJP returns

    ḡ_a = gᵀ ∂y/∂a,   ḡ_b = gᵀ ∂y/∂b      (each of its input's shape)

and ``backward`` (``engine.py``) calls the VJPs from the output back to the
leaves. The VJPs are themselves written with Tensor operations, so the
backward pass can be recorded too (``create_graph=True``): that is all
higher-order differentiation needs.

Mixing with plain values follows NumPy: ``2 * t``, ``t + np.ones(3)`` and
``np.ones(3) + t`` all give Tensors (``__array_ufunc__ = None`` makes NumPy
hand ``ndarray ⊕ Tensor`` to the Tensor's reflected method). Python scalars
are "weak" as in NumPy 2 (NEP 50): ``float32 * 2.0`` stays float32.

The operators call the operation modules, which import this one (for
``Tensor`` and ``record``); so this module imports only ``mode`` when it
loads, and reaches the operation modules through ``_Later`` (at the bottom)
on first use. Every module of the package can then be imported first.
"""
import importlib

import numpy as np

from .mode import is_grad_enabled

# Python scalars take the other operand's dtype (NumPy's weak scalars); NumPy
# scalars such as np.float64(2) keep their own dtype, as in NumPy 2.
_PY_SCALARS = (bool, int, float)


class Tensor:
    """An n-dimensional array that records the operations applied to it.

    Parameters
    ----------
    data : array_like or Tensor
        The values (kept as an ndarray, not copied when it already is one; a
        Tensor's data is taken without its history).
    requires_grad : bool
        Whether gradients with respect to this tensor are wanted; then it must
        be floating point.
    name : str, optional
        A label for graph drawings (``graph.to_dot``).

    Attributes
    ----------
    data : ndarray
        The values (``.numpy()`` returns the same array).
    grad : Tensor or None
        ``∂L/∂self`` summed over every ``L.backward()`` since the last
        ``zero_grad()``. Filled for leaves (and tensors that called
        ``retain_grad()``).
    requires_grad : bool
    """

    __slots__ = ("data", "grad", "requires_grad", "name", "_parents", "_vjp", "_op", "_retains_grad",
                 "__weakref__")
    # ndarray (op) Tensor returns NotImplemented, so Python calls Tensor's reflected method.
    __array_ufunc__ = None

    def __init__(self, data, requires_grad=False, name=None):
        if isinstance(data, Tensor):
            data = data.data
        data = np.asarray(data)
        if requires_grad and not np.issubdtype(data.dtype, np.floating):
            raise TypeError(f"only floating-point tensors can require gradients, got dtype {data.dtype} "
                            "(convert first, e.g. Tensor(x.astype(np.float64), requires_grad=True))")
        self.data = data
        self.grad = None
        self.requires_grad = bool(requires_grad)
        self.name = name
        self._parents = ()
        self._vjp = None
        self._op = None
        self._retains_grad = False

    # -- basic properties --------------------------------------------------
    @property
    def shape(self):
        return self.data.shape

    @property
    def ndim(self):
        return self.data.ndim

    @property
    def dtype(self):
        return self.data.dtype

    @property
    def size(self):
        return self.data.size

    @property
    def T(self):
        """All axes reversed (``transpose()``), as ``ndarray.T``."""
        return _shape.transpose(self)

    @property
    def is_leaf(self):
        """True for tensors created by the user (or under ``no_grad``), not by a recorded operation."""
        return self._vjp is None

    @property
    def op(self):
        """Name of the operation that made this tensor, or None for a leaf."""
        return self._op

    def numpy(self):
        """The underlying ndarray (shared, not copied)."""
        return self.data

    def item(self):
        """The value of a one-element tensor as a Python number."""
        return self.data.item()

    def detach(self):
        """A new leaf with the same data (shared) and no history: gradients stop here."""
        return Tensor(self.data)

    def astype(self, dtype):
        """Cast; the gradient is cast back to this tensor's dtype."""
        return _ew.astype(self, dtype)

    # -- gradients -----------------------------------------------------------
    def backward(self, gradient=None, create_graph=False):
        """Accumulate ``∂self/∂leaf`` (times ``gradient``) into every leaf's ``.grad``.

        Parameters
        ----------
        gradient : array_like or Tensor, optional
            ``∂L/∂self`` for a non-scalar tensor (the vector of the
            vector-Jacobian product). Not needed when ``self`` has one element.
        create_graph : bool
            Record the backward pass, so the gradients can be differentiated again.
        """
        _engine.backward(self, gradient, create_graph)

    def zero_grad(self):
        """Forget the accumulated gradient (``.grad = None``)."""
        self.grad = None

    def retain_grad(self):
        """Also fill ``.grad`` for this non-leaf tensor during ``backward``."""
        self._retains_grad = True
        return self

    # -- NumPy interoperation ------------------------------------------------
    def __array__(self, dtype=None, copy=None):
        if copy:
            return np.array(self.data, dtype=dtype, copy=True)
        return self.data if dtype is None else self.data.astype(dtype, copy=False)

    def __len__(self):
        return len(self.data)

    def __iter__(self):
        if self.ndim == 0:
            raise TypeError("iteration over a 0-d tensor")
        return (self[i] for i in range(len(self)))

    def __float__(self):
        return float(self.data)

    def __int__(self):
        return int(self.data)

    def __bool__(self):
        return bool(self.data)

    def __repr__(self):
        body = np.array2string(self.data, separator=", ", prefix="Tensor(")
        extra = f", dtype={self.dtype}" if self.dtype != np.float64 else ""
        if self._op is not None:
            extra += f", op={self._op}"
        elif self.requires_grad:
            extra += ", requires_grad=True"
        return f"Tensor({body}{extra})"

    # -- operators -----------------------------------------------------------
    def __add__(self, other):
        return _ew.add(self, other)

    def __radd__(self, other):
        return _ew.add(other, self)

    def __sub__(self, other):
        return _ew.sub(self, other)

    def __rsub__(self, other):
        return _ew.sub(other, self)

    def __mul__(self, other):
        return _ew.mul(self, other)

    def __rmul__(self, other):
        return _ew.mul(other, self)

    def __truediv__(self, other):
        return _ew.div(self, other)

    def __rtruediv__(self, other):
        return _ew.div(other, self)

    def __pow__(self, other):
        return _ew.power(self, other)

    def __rpow__(self, other):
        return _ew.power(other, self)

    def __matmul__(self, other):
        return _linalg.matmul(self, other)

    def __rmatmul__(self, other):
        return _linalg.matmul(other, self)

    def __neg__(self):
        return _ew.neg(self)

    def __pos__(self):
        return self

    def __abs__(self):
        return _ew.abs(self)

    def __getitem__(self, index):
        return _shape.getitem(self, index)

    # Comparisons give constant boolean tensors (masks for where); == and != keep
    # Python's identity semantics so tensors stay hashable.
    def __lt__(self, other):
        return Tensor(self.data < _value(other))

    def __le__(self, other):
        return Tensor(self.data <= _value(other))

    def __gt__(self, other):
        return Tensor(self.data > _value(other))

    def __ge__(self, other):
        return Tensor(self.data >= _value(other))

    # -- methods mirroring the functions ------------------------------------
    def exp(self):
        return _ew.exp(self)

    def log(self):
        return _ew.log(self)

    def sqrt(self):
        return _ew.sqrt(self)

    def tanh(self):
        return _ew.tanh(self)

    def sigmoid(self):
        return _ew.sigmoid(self)

    def relu(self):
        return _ew.relu(self)

    def abs(self):
        return _ew.abs(self)

    def clip(self, lo=None, hi=None):
        return _ew.clip(self, lo, hi)

    def sum(self, axis=None, keepdims=False):
        return _red.sum(self, axis, keepdims)

    def mean(self, axis=None, keepdims=False):
        return _red.mean(self, axis, keepdims)

    def max(self, axis=None, keepdims=False):
        return _red.max(self, axis, keepdims)

    def min(self, axis=None, keepdims=False):
        return _red.min(self, axis, keepdims)

    def var(self, axis=None, keepdims=False, ddof=0):
        return _red.var(self, axis, keepdims, ddof)

    def std(self, axis=None, keepdims=False, ddof=0):
        return _red.std(self, axis, keepdims, ddof)

    def reshape(self, *shape):
        return _shape.reshape(self, *shape)

    def transpose(self, *axes):
        return _shape.transpose(self, *axes)

    def swapaxes(self, axis1, axis2):
        return _shape.swapaxes(self, axis1, axis2)

    def flatten(self):
        return _shape.reshape(self, -1)

    def squeeze(self, axis=None):
        return _shape.squeeze(self, axis)

    def expand_dims(self, axis):
        return _shape.expand_dims(self, axis)

    def softmax(self, axis=-1):
        return _nn.softmax(self, axis)

    def log_softmax(self, axis=-1):
        return _nn.log_softmax(self, axis)

    def logsumexp(self, axis=None, keepdims=False):
        return _nn.logsumexp(self, axis, keepdims)


def _value(x):
    return x.data if isinstance(x, Tensor) else x


def lift(value, like=None):
    """``value`` as a Tensor; a Python scalar takes the dtype NumPy would give it next to ``like``."""
    if isinstance(value, Tensor):
        return value
    if like is not None and type(value) in _PY_SCALARS:
        return Tensor(np.asarray(value, dtype=np.result_type(like.dtype, value)))
    return Tensor(value)


def lift_pair(a, b):
    """Both operands of a binary operation as Tensors (a Python scalar adapts to the other)."""
    if isinstance(a, Tensor):
        return a, lift(b, a)
    b = lift(b)
    return lift(a, b), b


def record(data, op, parents, vjp):
    """The result of a primitive operation.

    Parameters
    ----------
    data : ndarray
        The forward value.
    op : str
        The operation's name (for errors and graph drawings).
    parents : tuple of Tensor
        The inputs, in the order ``vjp`` returns their gradients.
    vjp : callable
        ``vjp(g, out) -> tuple`` of gradients (Tensor, or None for an input that
        needs none), one per parent. ``out`` is this result: passing it in (not
        closing over it) keeps the graph free of reference cycles.

    The node is recorded only when grad mode is on and some parent requires a
    gradient; otherwise the result is a plain constant leaf.
    """
    out = Tensor.__new__(Tensor)
    out.data = data if type(data) is np.ndarray else np.asarray(data)
    out.grad = None
    out.name = None
    out._retains_grad = False
    if is_grad_enabled() and any(p.requires_grad for p in parents):
        out.requires_grad = True
        out._parents = tuple(parents)
        out._vjp = vjp
        out._op = op
    else:
        out.requires_grad = False
        out._parents = ()
        out._vjp = None
        out._op = None
    return out


class _Later:
    """An operation module, imported the first time one of its functions is read.

    The operation modules (``elementwise``, ``shape``...) import this one for
    ``Tensor`` and ``record``, so this one imports none of them at load time:
    the modules form a one-way chain (``mode`` <- ``tensor`` <- ``shape`` <-
    ``elementwise`` <- ``reductions`` <- ``nn``...) and any of them can be
    imported first. A Tensor method such as ``__add__`` calls ``_ew.add``:
    the first read imports ``elementwise`` and keeps ``add`` on this object,
    so every later read is a plain attribute lookup.
    """

    def __init__(self, module):
        self._module = module

    def __getattr__(self, name):              # only called for names not yet kept
        value = getattr(importlib.import_module(self._module, __package__), name)
        setattr(self, name, value)
        return value


_ew = _Later(".elementwise")
_engine = _Later(".engine")
_linalg = _Later(".linalg")
_nn = _Later(".nn")
_red = _Later(".reductions")
_shape = _Later(".shape")
