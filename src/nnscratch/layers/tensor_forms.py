"""Every layer's forward, and every cost, written again in autodiff Tensor operations.

This is the second path to every gradient. ``tensor_forward(layer, x)``
computes what ``layer.forward(x)`` computes, from the equations in the
layer's docstring, in ``nnscratch.autodiff`` operations on the layer's own
parameter arrays; autodiff then derives the gradients of that forward alone,
and the checks compare them with the layer's hand-written ``backward``
(``autodiff.check_layer_with_autodiff``, ``net.check_gradients(method="autodiff")``,
tests/test_autodiff_second_path.py, which also compares the forward values,
so a form cannot pass by differentiating some other function). The forms
are written for reading, not speed: no im2col tricks, fused weights or
reused buffers, and the convolution's unfold is autodiff's own.

Shapes are the layers' (batch first): dense (N, D) or (N, T, D); images
(N, C, H, W); sequences (N, T, D); token ids (N, T). A form is a function
``form(layer, x, params, training)`` where ``x`` is a Tensor (token ids: an
integer array) and ``params`` maps each of the layer's ``Parameter`` objects
to the Tensor standing for it; the recurrent forms also take
``initial_state``. A block's form runs its children's forms, so a network of
blocks needs nothing more.

Which form a layer gets is decided by its class, looked up in ``FORMS``
along the class's method resolution order (a subclass of ``ReLU`` uses the
``ReLU`` form unless it registers its own). A new layer joins every check
with one ``@register(MyLayer)`` function; a layer with no form is an error
that names it. The costs work the same way (``COST_FORMS``, ``tensor_cost``).
"""
import math

import numpy as np

from .. import costs
from ..autodiff import convolution as ad_conv
from ..autodiff import elementwise as ew
from ..autodiff import nn as ad_nn
from ..autodiff.shape import stack
from ..autodiff.tensor import Tensor, lift
from .attention import MultiHeadAttention, causal_mask
from .activations import GELU, LeakyReLU, ReLU, Sigmoid, Softmax, Tanh
from .blocks import Residual, Sequential
from .conv import Conv2D
from .dense import FullyConnected
from .dropout import Dropout
from .embedding import Embedding
from .gru import GRU
from .layernorm import LayerNorm
from .lstm import LSTM
from .normalization import BatchNorm
from .pooling import AvgPool2D, Flatten, MaxPool2D
from .positional import PositionalEmbedding
from .recurrent import RNN

FORMS = {}        # layer class -> form(layer, x, params, training[, initial_state])
COST_FORMS = {}   # cost class -> form(cost, a, t)


def register(*classes, table=FORMS):
    """Decorator: the function below is the Tensor-op form of ``classes`` (and their subclasses)."""
    def add(form):
        for cls in classes:
            table[cls] = form
        return form
    return add


def _lookup(table, obj, table_name):
    for cls in type(obj).__mro__:                    # the class itself, then its bases in order
        if cls in table:
            return table[cls]
    name = getattr(obj, "name", None)
    label = f"{name} ({type(obj).__name__})" if isinstance(name, str) else type(obj).__name__
    where = "" if table is FORMS else f", table={table_name}"
    raise TypeError(f"{label} has no Tensor-op form in {table_name}: add one with "
                    f"@nnscratch.layers.tensor_forms.register({type(obj).__name__}{where})")


def form_of(layer):
    """The Tensor-op form of ``layer``'s class (TypeError naming the layer when there is none)."""
    return _lookup(FORMS, layer, "FORMS")


def cost_form_of(cost):
    """The Tensor-op form of ``cost``'s class (TypeError naming it when there is none)."""
    return _lookup(COST_FORMS, cost, "COST_FORMS")


def parameter_tensors(layer, requires_grad=True):
    """``{Parameter: Tensor}`` for every parameter of ``layer`` (a layer, a block or a
    network): fresh leaves holding the parameter arrays (shared, not copied)."""
    return {p: Tensor(p.data, requires_grad=requires_grad) for p in layer.parameters()}


def tensor_forward(layer, x, params=None, training=False, initial_state=None):
    """``layer.forward(x, training)`` in Tensor ops.

    Parameters
    ----------
    layer : Layer
        A built layer (or block) of a class with a form.
    x : Tensor or ndarray
        The input batch, shaped as the layer expects (token ids stay integers).
    params : dict, optional
        ``{Parameter: Tensor}`` for the layer's parameters (``parameter_tensors``);
        by default constants holding their arrays.
    training : bool
        Training-mode behaviour: batch statistics in batch norm, the mask of
        the layer's last training forward in dropout.
    initial_state : array, Tensor or tuple, optional
        Recurrent layers only: h0 (N, H), or (h0, c0) for the LSTM; zeros by default.

    Returns
    -------
    Tensor, shaped as ``layer.forward``'s output.
    """
    form = form_of(layer)
    if params is None:
        params = parameter_tensors(layer, requires_grad=False)
    missing = [p.name for p in layer.parameters() if p not in params]
    if missing:
        raise ValueError(f"{layer.name} ({type(layer).__name__}): params has no Tensor for {missing}")
    if not isinstance(layer, Embedding):
        x = lift(x)
    if initial_state is None:
        return form(layer, x, params, training)
    if not isinstance(layer, (RNN, LSTM, GRU)):
        raise TypeError(f"{layer.name} ({type(layer).__name__}) takes no initial_state")
    return form(layer, x, params, training, initial_state=initial_state)


def network_forward(net, x, params=None, training=False):
    """Every layer of ``net`` in order, in Tensor ops (``params`` by default: constants)."""
    params = parameter_tensors(net, requires_grad=False) if params is None else params
    for layer in net.layers:
        x = tensor_forward(layer, x, params, training)
    return x


# -- dense and activations ----------------------------------------------------------------
@register(FullyConnected)
def dense(layer, x, p, training):
    """``y = x Wᵀ + b`` over the last axis: (N, D) -> (N, U), or (N, T, D) -> (N, T, U) per step."""
    return x @ p[layer.W].T + p[layer.b]


def logistic(a):
    """``σ(a) = 1 / (1 + e^{-a})``, as written (not the stable ``ad.sigmoid`` op)."""
    return 1.0 / (1.0 + ew.exp(-a))


@register(Sigmoid)
def sigmoid(layer, x, p, training):
    return logistic(x)


@register(Tanh)
def tanh(layer, x, p, training):
    return ew.tanh(x)


@register(ReLU)
def relu(layer, x, p, training):
    """``x`` where x > 0, else 0."""
    return ew.where(x.data > 0, x, 0.0)


@register(LeakyReLU)
def leaky_relu(layer, x, p, training):
    """``x`` where x > 0, else ``α x``."""
    return ew.where(x.data > 0, x, layer.negative_slope * x)


@register(GELU)
def gelu(layer, x, p, training):
    """``x Φ(x)`` with ``Φ(x) = (1 + erf(x / √2)) / 2``, or with ``approximate="tanh"``
    ``½ x (1 + tanh(√(2/π) (x + 0.044715 x³)))``."""
    if layer.approximate == "tanh":
        return 0.5 * x * (1.0 + ew.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * x * x * x)))
    return x * (0.5 * (1.0 + ew.erf(x / math.sqrt(2.0))))


@register(Softmax)
def softmax(layer, x, p, training):
    """``e^{x_k - m} / Σ_j e^{x_j - m}`` over the last axis, ``m`` the row maximum: a constant,
    since softmax is unchanged by shifting a row (so it carries no gradient)."""
    e = ew.exp(x - Tensor(x.data.max(axis=-1, keepdims=True)))
    return e / e.sum(axis=-1, keepdims=True)


# -- dropout, batch norm, layer norm --------------------------------------------------------------
@register(Dropout)
def dropout(layer, x, p, training):
    """Training: ``y = x ⊙ m / (1 - p)`` with ``m`` the keep mask of the layer's last
    training forward (a fixed mask: drawing it is not differentiable). Evaluation: ``y = x``."""
    if not training or layer.p == 0:
        return x
    mask = getattr(layer, "_cache_mask", None)        # m / (1 - p), kept by Dropout.forward for backward
    if mask is None or mask.shape != x.shape:
        raise ValueError(f"{layer.name} (Dropout): the training form uses the mask of the layer's last "
                         f"training forward, and there is none for input {x.shape}: run "
                         "layer.forward(x, training=True) on this batch first")
    keep = Tensor((mask != 0).astype(x.dtype))
    return x * keep / (1.0 - layer.p)


@register(BatchNorm)
def batch_norm(layer, x, p, training):
    """``y = γ (x - μ) / sqrt(σ² + ε) + β`` per feature (N, D) or channel (N, C, H, W);
    μ, σ² (biased) from the batch in training, the running statistics in evaluation."""
    axes = (0,) if x.ndim == 2 else (0, 2, 3)
    shape = (1, -1) if x.ndim == 2 else (1, -1, 1, 1)                  # broadcasts over the batch
    if training:
        mu = x.mean(axis=axes, keepdims=True)
        var = ((x - mu) * (x - mu)).mean(axis=axes, keepdims=True)
    else:
        mu = Tensor(layer.running_mean.reshape(shape))
        var = Tensor(layer.running_var.reshape(shape))
    x_hat = (x - mu) / ew.sqrt(var + layer.eps)
    return x_hat * p[layer.gamma].reshape(shape) + p[layer.beta].reshape(shape)


@register(LayerNorm)
def layer_norm(layer, x, p, training):
    """``y = γ (x - μ) / sqrt(σ² + ε) + β`` with μ, σ² (biased) over the last axis of each position."""
    mu = x.mean(axis=-1, keepdims=True)
    var = x.var(axis=-1, keepdims=True)                                 # mean((x - μ)²), biased
    x_hat = (x - mu) / ew.sqrt(var + layer.eps)
    return p[layer.gamma] * x_hat + p[layer.beta]


# -- images --------------------------------------------------------------------------------
@register(Conv2D)
def conv(layer, x, p, training):
    """Autodiff's own ``conv2d`` (pad, unfold by shifted slices, matmul), for both impls."""
    return ad_conv.conv2d(x, p[layer.W], p[layer.b], stride=layer.stride, padding=layer.pads)


@register(MaxPool2D)
def max_pool(layer, x, p, training):
    return ad_conv.max_pool2d(x, layer.size, layer.stride)


@register(AvgPool2D)
def avg_pool(layer, x, p, training):
    return ad_conv.avg_pool2d(x, layer.size, layer.stride)


@register(Flatten)
def flatten(layer, x, p, training):
    """(N, C, H, W) -> (N, C·H·W) in C-H-W order."""
    return x.reshape(x.shape[0], -1)


# -- sequences -----------------------------------------------------------------------------
@register(MultiHeadAttention)
def attention(layer, x, p, training):
    """``[Q K V] = x W_qkvᵀ + b_qkv``, per head ``P = softmax(Q Kᵀ / √d + M)``, ``O = P̃ V``,
    ``y = O W_outᵀ + b_out``; the mask M is -inf above the diagonal when causal, P̃ the weights
    times the dropout mask of the layer's last training forward (a constant) / (1 - p)."""
    N, T, E = x.shape
    H = layer.num_heads
    d = E // H
    qkv = x @ p[layer.W_qkv].T + p[layer.b_qkv]                                  # (N, T, 3E)

    def heads(part):                                                            # (N, H, T, d)
        return qkv[..., part * E:(part + 1) * E].reshape(N, T, H, d).transpose(0, 2, 1, 3)

    q, k, v = heads(0), heads(1), heads(2)
    scores = (q @ k.swapaxes(-1, -2)) / math.sqrt(d)                            # (N, H, T, T)
    if layer.causal:
        scores = ew.where(causal_mask(T, T, x.dtype) == 0, scores, -np.inf)
    weights = ad_nn.softmax(scores, axis=-1)
    if training and layer.dropout > 0:
        keep = getattr(layer, "_cache_keep", None)
        if keep is None or keep.shape != weights.shape:
            raise ValueError(f"{layer.name} (MultiHeadAttention): the training form uses the dropout mask of "
                             f"the layer's last training forward, and there is none for input {x.shape}")
        weights = weights * Tensor(keep.astype(x.dtype)) / (1.0 - layer.dropout)
    out = (weights @ v).transpose(0, 2, 1, 3).reshape(N, T, E)
    return out @ p[layer.W_out].T + p[layer.b_out]


@register(PositionalEmbedding)
def positional_embedding(layer, x, p, training):
    """``y[n, t] = x[n, t] + W[t]``."""
    return x + p[layer.W][:x.shape[1]]


@register(Embedding)
def embedding(layer, ids, p, training):
    """``y[n, t] = W[ids[n, t]]``: a gather, whose VJP adds each gradient into its token's row."""
    return p[layer.W][np.asarray(ids.data if isinstance(ids, Tensor) else ids)]


def _initial(layer, x, initial_state):
    """The initial state as a tuple of Tensors (N, H): given, or zeros."""
    count = 2 if isinstance(layer, LSTM) else 1
    if initial_state is None:
        return tuple(Tensor(np.zeros((x.shape[0], layer.hidden), dtype=x.dtype)) for _ in range(count))
    state = initial_state if isinstance(initial_state, tuple) else (initial_state,)
    if len(state) != count:
        raise ValueError(f"{layer.name} ({type(layer).__name__}) takes an initial state of {count} array(s)")
    return tuple(lift(s) for s in state)


def _block(layer, p, k, inp, weight, bias):
    """``inp W_kᵀ + b_k`` with gate block k (rows k·H to (k+1)·H) of a stacked weight and bias."""
    H = layer.hidden
    return inp @ p[weight][k * H:(k + 1) * H].T + p[bias][k * H:(k + 1) * H]


def _through_time(layer, x, state, step):
    """Run ``state = step(x_t, state)`` for t = 0..T-1; every h_t stacked (N, T, H) or the last (N, H)."""
    hs = []
    for t in range(x.shape[1]):
        state = step(x[:, t], state)                                 # x_t (N, D)
        hs.append(state[0])
    return stack(hs, axis=1) if layer.return_sequences else state[0]


@register(RNN)
def rnn(layer, x, p, training, initial_state=None):
    """``h_t = act(x_t W_ihᵀ + b_ih + h_{t-1} W_hhᵀ + b_hh)``, act tanh or ReLU."""
    act = ew.tanh if layer.activation == "tanh" else (lambda a: ew.where(a.data > 0, a, 0.0))

    def step(x_t, state):
        (h,) = state
        return (act(x_t @ p[layer.W_ih].T + p[layer.b_ih] + h @ p[layer.W_hh].T + p[layer.b_hh]),)
    return _through_time(layer, x, _initial(layer, x, initial_state), step)


@register(LSTM)
def lstm(layer, x, p, training, initial_state=None):
    """PyTorch's LSTM, gates i, f, g, o stacked in that order::

        a_k = x_t W_ih,kᵀ + b_ih,k + h_{t-1} W_hh,kᵀ + b_hh,k
        i, f, o = σ(a_i), σ(a_f), σ(a_o);   g = tanh(a_g)
        c_t = f ⊙ c_{t-1} + i ⊙ g;           h_t = o ⊙ tanh(c_t)
    """
    def step(x_t, state):
        h, c = state
        a = [_block(layer, p, k, x_t, layer.W_ih, layer.b_ih) + _block(layer, p, k, h, layer.W_hh, layer.b_hh)
             for k in range(4)]
        i, f, g, o = logistic(a[0]), logistic(a[1]), ew.tanh(a[2]), logistic(a[3])
        c = f * c + i * g
        return o * ew.tanh(c), c
    return _through_time(layer, x, _initial(layer, x, initial_state), step)


@register(GRU)
def gru(layer, x, p, training, initial_state=None):
    """PyTorch's GRU, gates r, z, n stacked in that order::

        r = σ(x_t W_irᵀ + b_ir + h W_hrᵀ + b_hr);   z = σ(x_t W_izᵀ + b_iz + h W_hzᵀ + b_hz)
        n = tanh(x_t W_inᵀ + b_in + r ⊙ (h W_hnᵀ + b_hn));   h_t = (1 - z) ⊙ n + z ⊙ h
    """
    def step(x_t, state):
        (h,) = state
        gate = [_block(layer, p, k, x_t, layer.W_ih, layer.b_ih) for k in range(3)]     # x_t W_ikᵀ + b_ik
        hidden = [_block(layer, p, k, h, layer.W_hh, layer.b_hh) for k in range(3)]     # h W_hkᵀ + b_hk
        r, z = logistic(gate[0] + hidden[0]), logistic(gate[1] + hidden[1])
        n = ew.tanh(gate[2] + r * hidden[2])
        return ((1 - z) * n + z * h,)
    return _through_time(layer, x, _initial(layer, x, initial_state), step)


# -- blocks ----------------------------------------------------------------------------------
@register(Sequential)
def sequential(layer, x, p, training):
    """``l_k(... l_1(x))``: each child's form in order."""
    for child in layer.children():
        x = tensor_forward(child, x, p, training)
    return x


@register(Residual)
def residual(layer, x, p, training):
    """``x + f(x)``, f the children's forms in order."""
    return x + sequential(layer, x, p, training)


# -- costs: C = (1/N) Σ c(a_n, t_n), N the number of predictions (N·T for sequences) ---------------
def tensor_cost(cost, a, t):
    """``cost.value(a, t)`` as a scalar Tensor, differentiable in ``a`` (the network's output)."""
    return cost_form_of(cost)(cost, lift(a), Tensor(np.asarray(t, dtype=a.dtype)))


def _rows(a):
    return a.size // a.shape[-1]


@register(costs.Quadratic, table=COST_FORMS)
def quadratic(cost, a, t):
    """``½ Σ (a - t)² / N``."""
    d = a - t
    return 0.5 * (d * d).sum() / _rows(a)


@register(costs.CrossEntropy, table=COST_FORMS)
def cross_entropy(cost, a, t):
    """``-Σ t ln a / N`` on probabilities ``a`` (a softmax output)."""
    return -(t * ew.log(a)).sum() / _rows(a)


@register(costs.BinaryCrossEntropy, table=COST_FORMS)
def binary_cross_entropy(cost, a, t):
    """``-Σ [t ln a + (1 - t) ln(1 - a)] / N`` on independent probabilities ``a`` (a sigmoid output)."""
    return -(t * ew.log(a) + (1 - t) * ew.log(1 - a)).sum() / _rows(a)


@register(costs.CrossEntropyLogits, table=COST_FORMS)
def cross_entropy_on_logits(cost, z, t):
    """``-Σ t ln softmax(z) / N`` from raw scores ``z`` (no softmax layer), through log-softmax."""
    return -(t * ad_nn.log_softmax(z, axis=-1)).sum() / _rows(z)
