"""Reverse-mode automatic differentiation on NumPy arrays.

``Tensor`` wraps an ndarray and records the operations applied to it (define
by run); ``loss.backward()`` runs their vector-Jacobian products from the loss
back to every leaf with ``requires_grad=True``. The VJPs are themselves Tensor
operations, so ``backward(create_graph=True)`` and composed transforms such as
``grad(grad(f))`` give derivatives of any order.

>>> import numpy as np
>>> from nnscratch import autodiff as ad
>>> x = ad.Tensor(np.array([1.0, 2.0, 3.0]), requires_grad=True)
>>> (x ** 3).sum().backward()
>>> x.grad.numpy()
array([ 3., 12., 27.])
>>> ad.hessian(lambda x: (x ** 3).sum())(np.array([1.0, 2.0]))
array([[ 6.,  0.],
       [ 0., 12.]])

Modules, each importing only the ones before it (so any of them can be
imported first): ``mode`` (no_grad), ``tensor`` (Tensor, recording),
``shape``, ``elementwise``, ``reductions``, ``linalg``, ``nn`` (softmax
family, cross-entropy), ``convolution`` (conv2d, pooling, unfold),
``engine`` (backward, gradients), ``functional`` (grad, value_and_grad,
jacobian, hessian, hvp), ``graph`` (to_dot, draw_graph). The package is
the engine and its operations only; ``bridge`` (``AutodiffLayer`` and the
checks of the layers' backward passes) uses the layers and is imported on
its own, and the layers' forwards in Tensor ops are in
``nnscratch.layers.tensor_forms``.

``sum``, ``max``, ``min``, ``abs`` and ``power`` are available as attributes
(``ad.sum(t)``) but are not in the star-import list, so that
``from nnscratch.autodiff import *`` does not shadow Python's builtins.
"""
from .convolution import avg_pool2d, conv2d, fold, max_pool2d, unfold
from .elementwise import (add, astype, clip, div, erf, exp, log, maximum, minimum, mul, neg, relu, sigmoid,
                          sqrt, sub, tanh, where)
from .elementwise import abs as abs, power as power  # re-exported, kept out of __all__ (builtins)
from .engine import backward, gradients
from .functional import grad, hessian, hvp, jacobian, value_and_grad
from .graph import draw_graph, to_dot
from .linalg import dot, matmul
from .mode import enable_grad, is_grad_enabled, no_grad, set_grad_enabled
from .nn import cross_entropy, log_softmax, logsumexp, softmax
from .reductions import mean, std, var
from .reductions import max as max, min as min, sum as sum  # re-exported, kept out of __all__ (builtins)
from .shape import (broadcast_to, concatenate, expand_dims, flatten, getitem, pad, reshape, squeeze, stack,
                    sum_to, swapaxes, transpose)
from .tensor import Tensor

__all__ = [
    "Tensor", "no_grad", "enable_grad", "set_grad_enabled", "is_grad_enabled",
    "backward", "gradients", "grad", "value_and_grad", "jacobian", "hessian", "hvp",
    "add", "sub", "mul", "div", "neg", "exp", "erf", "log", "sqrt", "tanh", "sigmoid", "relu", "astype",
    "maximum", "minimum", "where", "clip",
    "mean", "var", "std",
    "reshape", "transpose", "swapaxes", "expand_dims", "squeeze", "flatten", "getitem",
    "concatenate", "stack", "pad", "broadcast_to", "sum_to",
    "matmul", "dot",
    "softmax", "log_softmax", "logsumexp", "cross_entropy",
    "conv2d", "max_pool2d", "avg_pool2d", "unfold", "fold",
    "to_dot", "draw_graph",
]
