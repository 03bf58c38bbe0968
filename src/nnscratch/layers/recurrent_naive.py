"""The recurrent cells as their equations read: one time step forward, one step backward.

This is the teaching twin of recurrent.py, lstm.py and gru.py: ``RNN(H,
impl="naive")``, ``LSTM(H, impl="naive")`` and ``GRU(H, impl="naive")`` (or
``net.add_lstm_layer(H, impl="naive")``) run the functions below. They compute
the same numbers as the default ``impl="fast"`` (tests/test_recurrent_twins.py
checks outputs and every gradient agree to about 1e-10 in float64), written
the way the equations are:

- batch-first arrays, one row per sample: ``x_t`` (N, D), ``h_t`` and ``c_t`` (N, H);
- the parameters as they are stored (PyTorch's layout): ``W_ih`` (G·H, D),
  ``W_hh`` (G·H, H), ``b_ih`` and ``b_hh`` (G·H,), the G gate blocks stacked
  in PyTorch's order (LSTM i, f, g, o; GRU r, z, n). So for the LSTM
  ``W_ih = [W_ii; W_if; W_ig; W_io]``, and block i of the product
  ``x_t W_ihᵀ + b_ih + h_{t-1} W_hhᵀ + b_hh`` is ``x_t W_iiᵀ + b_ii + h_{t-1} W_hiᵀ + b_hi``,
  the pre-activation of gate i in PyTorch's documentation;
- ``σ(a) = 1 / (1 + e^{-a})`` and ``np.tanh``, as written;
- every step makes new arrays and returns what its backward needs as a
  ``cache`` (cs231n's convention): nothing is reused from step to step.

The step backward sits right under its forward and repeats, above each
group of lines, the forward line it differentiates (llm.c's style), so the
forward equations can be ticked off one by one reading the backward upwards.
``forward_through_time`` and ``backward_through_time`` are the time loop and
backpropagation through time, shared by the three cells.

Every step function has the same form, so the loops need not know the cell::

    state, cache = step_forward(x_t, state, weights)       state = (h,) or (h, c) for the LSTM
    dx_t, d_state, grads = step_backward(d_state, cache, need_dx)

with ``weights = (W_ih, W_hh, b_ih, b_hh)`` and ``grads`` their gradients in
that order.
"""
import numpy as np


def sigmoid(a):
    """σ(a) = 1 / (1 + e^{-a})."""
    return 1 / (1 + np.exp(-a))


def linear_backward(d_out, inp, W, need_d_inp=True):
    """Backward of ``out = inp Wᵀ + b`` (inp (N, K), W (M, K), b (M,)), as in a dense layer.

    Returns ``(d_inp (N, K) or None, dW (M, K), db (M,))``: every sample's
    contribution to the weight and bias gradients, summed over the batch.
    """
    dW = d_out.T @ inp                                   # (M, K)
    db = d_out.sum(axis=0)                               # (M,)
    d_inp = d_out @ W if need_d_inp else None            # (N, K)
    return d_inp, dW, db


# -- Elman RNN -----------------------------------------------------------------------------------
def rnn_step_forward(x_t, state, weights, activation="tanh"):
    """h_t = act(x_t W_ihᵀ + b_ih + h_{t-1} W_hhᵀ + b_hh), act = tanh or relu.

    x_t (N, D), state (h_{t-1},) with h_{t-1} (N, H); returns (h_t,) and the cache.
    """
    (h_prev,) = state
    W_ih, W_hh, b_ih, b_hh = weights
    a = x_t @ W_ih.T + b_ih + h_prev @ W_hh.T + b_hh     # (N, H)
    h = np.tanh(a) if activation == "tanh" else np.maximum(a, 0)
    cache = (x_t, h_prev, a, h, W_ih, W_hh, activation)
    return (h,), cache


def rnn_step_backward(d_state, cache, need_dx=True):
    """From (∂C/∂h_t,) to dx_t, (∂C/∂h_{t-1},) and this step's (dW_ih, dW_hh, db_ih, db_hh)."""
    (dh,) = d_state
    x_t, h_prev, a, h, W_ih, W_hh, activation = cache
    # forward: h = tanh(a)  so  da = dh ⊙ (1 - h²);   h = relu(a)  so  da = dh ⊙ [a > 0]
    da = dh * (1 - h * h) if activation == "tanh" else dh * (a > 0)
    # forward: a = x_t W_ihᵀ + b_ih + h_{t-1} W_hhᵀ + b_hh, so:
    dx, dW_ih, db_ih = linear_backward(da, x_t, W_ih, need_dx)
    dh_prev, dW_hh, db_hh = linear_backward(da, h_prev, W_hh)
    return dx, (dh_prev,), (dW_ih, dW_hh, db_ih, db_hh)


# -- LSTM ----------------------------------------------------------------------------------------
def lstm_step_forward(x_t, state, weights):
    """One LSTM step, as PyTorch documents ``nn.LSTM``::

        i = σ(x_t W_iiᵀ + b_ii + h_{t-1} W_hiᵀ + b_hi)
        f = σ(x_t W_ifᵀ + b_if + h_{t-1} W_hfᵀ + b_hf)
        g = tanh(x_t W_igᵀ + b_ig + h_{t-1} W_hgᵀ + b_hg)
        o = σ(x_t W_ioᵀ + b_io + h_{t-1} W_hoᵀ + b_ho)
        c_t = f ⊙ c_{t-1} + i ⊙ g
        h_t = o ⊙ tanh(c_t)

    x_t (N, D), state (h_{t-1}, c_{t-1}) each (N, H); returns (h_t, c_t) and the cache.
    """
    h_prev, c_prev = state
    W_ih, W_hh, b_ih, b_hh = weights
    a = x_t @ W_ih.T + b_ih + h_prev @ W_hh.T + b_hh     # (N, 4H): the gates' pre-activations side by side
    a_i, a_f, a_g, a_o = np.split(a, 4, axis=1)          # (N, H) each, PyTorch's order i, f, g, o
    i = sigmoid(a_i)
    f = sigmoid(a_f)
    g = np.tanh(a_g)
    o = sigmoid(a_o)
    c = f * c_prev + i * g
    tanh_c = np.tanh(c)
    h = o * tanh_c
    cache = (x_t, h_prev, c_prev, i, f, g, o, tanh_c, W_ih, W_hh)
    return (h, c), cache


def lstm_step_backward(d_state, cache, need_dx=True):
    """From (∂C/∂h_t, ∂C/∂c_t) to dx_t, (∂C/∂h_{t-1}, ∂C/∂c_{t-1}) and this step's weight gradients.

    ∂C/∂c_t arrives from step t+1 (through c_{t+1} = f ⊙ c_t + ...); here the
    path through h_t is added to it.
    """
    dh, dc = d_state
    x_t, h_prev, c_prev, i, f, g, o, tanh_c, W_ih, W_hh = cache
    # forward: h_t = o ⊙ tanh(c_t), so (c_t reaches C through h_t and, the dc that came in, through c_{t+1}):
    do = dh * tanh_c
    dc = dc + dh * o * (1 - tanh_c * tanh_c)
    # forward: c_t = f ⊙ c_{t-1} + i ⊙ g, so:
    df = dc * c_prev
    dc_prev = dc * f
    di = dc * g
    dg = dc * i
    # forward: i = σ(a_i), f = σ(a_f), g = tanh(a_g), o = σ(a_o); σ' = σ(1 - σ), tanh' = 1 - tanh², so:
    da_i = di * i * (1 - i)
    da_f = df * f * (1 - f)
    da_g = dg * (1 - g * g)
    da_o = do * o * (1 - o)
    # forward: [a_i, a_f, a_g, a_o] = a = x_t W_ihᵀ + b_ih + h_{t-1} W_hhᵀ + b_hh, so:
    da = np.concatenate([da_i, da_f, da_g, da_o], axis=1)                 # (N, 4H)
    dx, dW_ih, db_ih = linear_backward(da, x_t, W_ih, need_dx)
    dh_prev, dW_hh, db_hh = linear_backward(da, h_prev, W_hh)
    return dx, (dh_prev, dc_prev), (dW_ih, dW_hh, db_ih, db_hh)


# -- GRU -----------------------------------------------------------------------------------------
def gru_step_forward(x_t, state, weights):
    """One GRU step, as PyTorch documents ``nn.GRU`` (the reset gate multiplies W_hn h + b_hn)::

        r = σ(x_t W_irᵀ + b_ir + h_{t-1} W_hrᵀ + b_hr)
        z = σ(x_t W_izᵀ + b_iz + h_{t-1} W_hzᵀ + b_hz)
        n = tanh(x_t W_inᵀ + b_in + r ⊙ (h_{t-1} W_hnᵀ + b_hn))
        h_t = (1 - z) ⊙ n + z ⊙ h_{t-1}

    x_t (N, D), state (h_{t-1},) with h_{t-1} (N, H); returns (h_t,) and the cache.
    """
    (h_prev,) = state
    W_ih, W_hh, b_ih, b_hh = weights
    from_x = x_t @ W_ih.T + b_ih                          # (N, 3H): x_t's part of r, z, n
    from_h = h_prev @ W_hh.T + b_hh                       # (N, 3H): h_{t-1}'s part
    x_r, x_z, x_n = np.split(from_x, 3, axis=1)          # (N, H) each, PyTorch's order r, z, n
    h_r, h_z, h_n = np.split(from_h, 3, axis=1)
    r = sigmoid(x_r + h_r)
    z = sigmoid(x_z + h_z)
    n = np.tanh(x_n + r * h_n)
    h = (1 - z) * n + z * h_prev
    cache = (x_t, h_prev, r, z, n, h_n, W_ih, W_hh)
    return (h,), cache


def gru_step_backward(d_state, cache, need_dx=True):
    """From (∂C/∂h_t,) to dx_t, (∂C/∂h_{t-1},) and this step's weight gradients."""
    (dh,) = d_state
    x_t, h_prev, r, z, n, h_n, W_ih, W_hh = cache
    # forward: h_t = (1 - z) ⊙ n + z ⊙ h_{t-1}, so:
    dn = dh * (1 - z)
    dz = dh * (h_prev - n)
    dh_prev_direct = dh * z
    # forward: n = tanh(x_n + r ⊙ h_n), so (with da_n = ∂C/∂(x_n + r ⊙ h_n)):
    da_n = dn * (1 - n * n)
    dx_n = da_n
    dr = da_n * h_n
    dh_n = da_n * r
    # forward: z = σ(x_z + h_z), r = σ(x_r + h_r), so:
    dx_z = dh_z = dz * z * (1 - z)
    dx_r = dh_r = dr * r * (1 - r)
    # forward: [x_r, x_z, x_n] = x_t W_ihᵀ + b_ih  and  [h_r, h_z, h_n] = h_{t-1} W_hhᵀ + b_hh, so:
    d_from_x = np.concatenate([dx_r, dx_z, dx_n], axis=1)                 # (N, 3H)
    d_from_h = np.concatenate([dh_r, dh_z, dh_n], axis=1)                 # (N, 3H)
    dx, dW_ih, db_ih = linear_backward(d_from_x, x_t, W_ih, need_dx)
    dh_prev_through_W, dW_hh, db_hh = linear_backward(d_from_h, h_prev, W_hh)
    # h_{t-1} reached h_t two ways: directly (z ⊙ h_{t-1}) and through W_hh (r, z and n):
    dh_prev = dh_prev_direct + dh_prev_through_W
    return dx, (dh_prev,), (dW_ih, dW_hh, db_ih, db_hh)


# -- the time loop, and backpropagation through time ----------------------------------------------
def forward_through_time(step_forward, x, state, weights):
    """Run the cell over t = 1 .. T: ``state, cache = step_forward(x_t, state, weights)``.

    x (N, T, D); ``state`` the initial state (h_0,) or (h_0, c_0), each (N, H).
    Returns every h_t stacked (N, T, H), the final state and the caches of the T steps.
    """
    hs, caches = [], []
    for t in range(x.shape[1]):
        state, cache = step_forward(x[:, t], state, weights)              # x[:, t]: (N, D)
        hs.append(state[0])
        caches.append(cache)
    return np.stack(hs, axis=1), state, caches                            # (N, T, H)


def backward_through_time(step_backward, dhs, d_state, caches, need_dx=True):
    """The loop above run backwards, t = T .. 1, carrying ∂C/∂(state) from step t to step t-1.

    dhs (N, T, H): ∂C/∂h_t from the layer's output (zero at steps it does not
    output); ``d_state``: ∂C/∂(final state) from after the sequence (zeros:
    nothing after the last step reads it). Returns dx (N, T, D) or None,
    ∂C/∂(initial state), and each weight's gradient summed over the steps
    (a weight is used at every step, so every step adds to its gradient).
    """
    steps = len(caches)
    dxs, grads = [None] * steps, None
    for t in reversed(range(steps)):
        # h_t went two ways: to the layer's output, and into step t+1 (d_state[0])
        d_state = (d_state[0] + dhs[:, t],) + d_state[1:]
        dxs[t], d_state, step_grads = step_backward(d_state, caches[t], need_dx)
        grads = step_grads if grads is None else tuple(g + s for g, s in zip(grads, step_grads))
    dx = np.stack(dxs, axis=1) if need_dx else None                       # (N, T, D)
    return dx, d_state, grads
