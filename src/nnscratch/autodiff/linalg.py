"""Matrix products, with NumPy's ``@`` semantics (batched and broadcast).

For ``Y = A @ B`` with ``A`` (..., n, k), ``B`` (..., k, m) and ``G = ∂L/∂Y``::

    Y_ij = Σ_k A_ik B_kj   ⇒   ∂L/∂A = G Bᵀ,   ∂L/∂B = Aᵀ G

with the transposes on the last two axes, batch axes summed back to each
input's shape (a batch of matrices times one matrix: the single matrix
collects the gradient of every batch). Vectors are promoted to matrices with
reshapes (``(k,)`` → ``(1, k)`` on the left, ``(k, 1)`` on the right) and the
added axis removed afterwards, so their gradients come through those reshapes.
"""
from .shape import reshape, sum_to, swapaxes, transpose
from .tensor import lift_pair, record


def matmul(a, b):
    """``a @ b`` for any operands NumPy's ``matmul`` accepts (no 0-d ones)."""
    a, b = lift_pair(a, b)
    if a.ndim == 0 or b.ndim == 0:
        raise ValueError(f"matmul: operands must have at least one axis, got shapes {a.shape} and {b.shape} "
                         "(use * to scale)")
    if a.ndim == 1 and b.ndim == 1:
        return reshape(_matmul(reshape(a, 1, -1), reshape(b, -1, 1)), ())      # (1, 1) -> ()
    if a.ndim == 1:
        out = _matmul(reshape(a, 1, -1), b)                                     # (..., 1, m)
        return reshape(out, out.shape[:-2] + out.shape[-1:])                    # (..., m)
    if b.ndim == 1:
        out = _matmul(a, reshape(b, -1, 1))                                     # (..., n, 1)
        return reshape(out, out.shape[:-1])                                     # (..., n)
    return _matmul(a, b)


def _matmul(a, b):
    """The primitive, both operands at least 2-D.

    VJP: ``ḡ_a = sum_to(G @ Bᵀ, a.shape)``, ``ḡ_b = sum_to(Aᵀ @ G, b.shape)``.
    """
    try:
        data = a.data @ b.data
    except ValueError:
        raise ValueError(f"matmul: shapes {a.shape} and {b.shape} do not match: the last axis of the first "
                         f"({a.shape[-1]}) must equal the second-to-last of the second ({b.shape[-2]}), "
                         "and batch axes must broadcast") from None

    def vjp(g, y):
        grad_a = sum_to(_matmul(g, _matrix_transpose(b)), a.shape) if a.requires_grad else None
        grad_b = sum_to(_matmul(_matrix_transpose(a), g), b.shape) if b.requires_grad else None
        return grad_a, grad_b
    return record(data, "matmul", (a, b), vjp)


def _matrix_transpose(t):
    """Swap the last two axes (plain ``transpose`` for matrices, the common case)."""
    return transpose(t) if t.ndim == 2 else swapaxes(t, -1, -2)


def dot(a, b):
    """Inner product of two vectors (``a @ b`` for 1-D operands)."""
    a, b = lift_pair(a, b)
    if a.ndim != 1 or b.ndim != 1:
        raise ValueError(f"dot expects two vectors, got shapes {a.shape} and {b.shape}; use matmul")
    return matmul(a, b)

