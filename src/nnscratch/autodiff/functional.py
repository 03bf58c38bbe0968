"""Function transforms: ``grad``, ``value_and_grad``, ``jacobian``, ``hessian``, ``hvp``.

``grad(f)`` is a new function that evaluates ``f`` on fresh leaves and returns
``∂f/∂x`` for the chosen positional arguments. Transforms compose:
``grad(grad(f))`` is the second derivative of a scalar function, and
``hessian(f) = jacobian(grad(f))``.

How composition works: a transform that is called while another one is
evaluating its function (or is given Tensors that require grad, with grad mode
on) is "inside a create_graph context". It then records its own backward pass
(``create_graph=True``) and returns Tensors connected to the enclosing graph,
so the enclosing transform can differentiate through it. Called at the top
level with plain arrays, it returns plain arrays.
"""
import numpy as np

from .engine import gradients
from .mode import enable_grad, inside_transform, is_grad_enabled, transform_depth
from .shape import identity, reshape, stack
from .tensor import Tensor, lift


def _argnums_tuple(argnums):
    return (argnums,) if isinstance(argnums, (int, np.integer)) else tuple(argnums)


def _nested(args):
    """Must this call record its backward pass for an enclosing differentiation?"""
    return is_grad_enabled() and (inside_transform()
                                  or any(isinstance(a, Tensor) and a.requires_grad for a in args))


def _as_input(value, nested):
    """A tensor to differentiate with respect to.

    Inside a create_graph context a Tensor that requires grad is passed
    through an identity operation, so the new input is still connected to the
    enclosing graph; anything else becomes a fresh leaf (integers as float64).
    """
    if nested and isinstance(value, Tensor) and value.requires_grad:
        return identity(value)
    data = value.data if isinstance(value, Tensor) else np.asarray(value)
    if not np.issubdtype(data.dtype, np.floating):
        data = data.astype(np.float64)
    return Tensor(data, requires_grad=True)


def _evaluate(f, args, kwargs, argnums):
    """Run ``f`` on fresh inputs; returns (output Tensor, the inputs, nested?)."""
    if not args:
        raise TypeError("the transformed function needs at least one positional argument to differentiate")
    for i in argnums:
        if not -len(args) <= i < len(args):
            raise ValueError(f"argnums {i} is out of range for {len(args)} positional arguments")
    nested = _nested(args)
    args = list(args)
    inputs = []
    for i in argnums:
        args[i] = _as_input(args[i], nested)
        inputs.append(args[i])
    with enable_grad(), transform_depth():
        out = lift(f(*args, **kwargs))
    return out, inputs, nested


def _result(tensors, nested, single):
    out = tuple(t if nested else t.data for t in tensors)
    return out[0] if single else out


def value_and_grad(f, argnums=0):
    """A function returning ``(f(*args), ∂f/∂args[argnums])``.

    ``f`` must return a one-element Tensor (a scalar). ``argnums`` is an int
    (one gradient) or a tuple (a tuple of gradients). Arguments may be arrays,
    numbers or Tensors. Outside a create_graph context the value is a NumPy
    scalar and the gradients are arrays; inside one, all are Tensors.
    """
    argnums_t = _argnums_tuple(argnums)
    single = isinstance(argnums, (int, np.integer))

    def value_and_grad_f(*args, **kwargs):
        out, inputs, nested = _evaluate(f, args, kwargs, argnums_t)
        if out.size != 1:
            raise ValueError(f"grad needs f to return a scalar, got shape {out.shape}; "
                             "use jacobian for vector-valued functions")
        with enable_grad():
            grads = gradients(out, inputs, create_graph=nested) if out.requires_grad else [None] * len(inputs)
        grads = [Tensor(np.zeros_like(x.data)) if gr is None else gr for gr, x in zip(grads, inputs)]
        value = out if nested else out.data[()]
        return value, _result(grads, nested, single)

    value_and_grad_f.__name__ = f"value_and_grad({getattr(f, '__name__', 'f')})"
    return value_and_grad_f


def grad(f, argnums=0):
    """The gradient of scalar ``f`` with respect to positional argument(s) ``argnums``.

    ``grad(f)(x)`` is ``∇f(x)`` with ``x``'s shape; ``grad(f, (0, 1))(x, y)`` is
    ``(∂f/∂x, ∂f/∂y)``. Compose freely: ``grad(grad(f))(x) = f''(x)``.
    """
    vg = value_and_grad(f, argnums)

    def grad_f(*args, **kwargs):
        return vg(*args, **kwargs)[1]

    grad_f.__name__ = f"grad({getattr(f, '__name__', 'f')})"
    return grad_f


def jacobian(f, argnums=0):
    """The Jacobian of ``f`` with respect to one argument: shape ``f(x).shape + x.shape``.

    One reverse pass per output entry (the rows ``e_iᵀ J``), so meant for small outputs.
    """
    if not isinstance(argnums, (int, np.integer)):
        raise TypeError("jacobian differentiates with respect to one argument (an int argnums)")

    def jacobian_f(*args, **kwargs):
        out, (x,), nested = _evaluate(f, args, kwargs, (argnums,))
        shape = out.shape + x.shape
        if out.size == 0 or not out.requires_grad:        # f does not depend on x
            zeros = np.zeros(shape, dtype=x.dtype)
            return Tensor(zeros) if nested else zeros
        rows = []
        with enable_grad():
            for i in range(out.size):
                seed = np.zeros(out.shape, dtype=out.dtype)
                seed.reshape(-1)[i] = 1                                        # e_i
                (row,) = gradients(out, [x], [seed], create_graph=nested)      # e_iᵀ J
                rows.append(Tensor(np.zeros_like(x.data)) if row is None else row)
            if nested:
                return reshape(stack(rows), shape)
        return np.stack([r.data for r in rows]).reshape(shape)

    jacobian_f.__name__ = f"jacobian({getattr(f, '__name__', 'f')})"
    return jacobian_f


def hessian(f, argnums=0):
    """The Hessian ``∂²f/∂x²`` of scalar ``f``: ``jacobian(grad(f))``, shape ``x.shape + x.shape``."""
    return jacobian(grad(f, argnums), argnums)


def hvp(f, x, v):
    """The Hessian-vector product ``∇²f(x) · v`` without forming the Hessian.

    Reverse over reverse: ``∇_x ⟨∇f(x), v⟩`` — two backward passes whatever the size of ``x``.
    """
    v = v.data if isinstance(v, Tensor) else np.asarray(v)
    return grad(lambda x_: (grad(f)(x_) * v).sum())(x)
