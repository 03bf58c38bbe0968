"""Recurrent layers (RNN, LSTM, GRU) with backpropagation through time.

Input ``x`` (N, T, D); output the hidden state of every step (N, T, H) with
``return_sequences=True``, or of the last step (N, H). Weights follow
PyTorch's ``nn.RNN/LSTM/GRU`` (single layer, ``batch_first=True``):
``W_ih`` (G·H, D), ``W_hh`` (G·H, H), ``b_ih`` and ``b_hh`` (G·H,), the G
gate blocks stacked in PyTorch's order (LSTM i, f, g, o; GRU r, z, n), all
initialized from U(-1/√H, 1/√H) as PyTorch does.

Forward runs the time loop; the input projections ``x_t W_ihᵀ`` of all steps
are one matrix product before it. Backward runs the loop in reverse,
carrying ∂C/∂h (and ∂C/∂c) from step t to step t-1; the weight gradients,
being sums over steps, are again one matrix product each after the loop.

Stateful mode (``stateful=True``, truncated BPTT): the final state of one
batch is the initial state of the next (when the batch size matches), but
gradients stop at the batch boundary. ``reset_state()`` forgets it.
"""
import numpy as np

from .base import Layer, Parameter


def sigmoid_(a):
    """σ(a) = 1 / (1 + e^{-a}) in place, returning ``a``.

    Through ``exp`` because NumPy's float32 ``exp`` is about twice as fast as
    its ``tanh``, and this runs on every gate of every step. For a < -88
    (float32) ``e^{-a}`` overflows to inf and σ correctly comes out 0; the
    caller silences that overflow warning with ``np.errstate``.
    """
    np.negative(a, out=a)
    np.exp(a, out=a)
    a += 1
    np.reciprocal(a, out=a)
    return a


class Recurrent(Layer):
    """Shared machinery; subclasses define ``gates`` (G), ``_step`` and ``_step_back``.

    Parameters
    ----------
    hidden : int
        State size H.
    return_sequences : bool
        Output every step (N, T, H) or only the last (N, H).
    stateful : bool
        Carry the final state to the next batch (without gradient).

    ``forward(x, training, initial_state=None)`` takes an optional initial
    state (h0 (N, H), or (h0, c0) for the LSTM); after ``backward``,
    ``initial_state_grad`` holds its gradient in the same form.
    """

    gates = 1
    state_count = 1  # arrays in the state: h, or (h, c) for the LSTM

    def __init__(self, hidden, return_sequences=False, stateful=False):
        super().__init__()
        if int(hidden) != hidden or hidden < 1:
            raise ValueError(f"hidden must be a positive integer, got {hidden!r}")
        self.hidden = int(hidden)
        self.return_sequences = bool(return_sequences)
        self.stateful = bool(stateful)
        self.carried_state = None
        self.initial_state_grad = None

    def _build(self, input_shape, rng, dtype):
        if len(input_shape) != 2:
            raise ValueError(f"{self.name} ({type(self).__name__}) expects sequences (N, T, D), "
                             f"got per-sample shape {input_shape}")
        t, d = input_shape
        gh, bound = self.gates * self.hidden, 1.0 / np.sqrt(self.hidden)
        uniform = lambda *shape: rng.uniform(-bound, bound, shape).astype(dtype)
        self.W_ih = Parameter(uniform(gh, d), "W_ih")
        self.W_hh = Parameter(uniform(gh, self.hidden), "W_hh")
        self.b_ih = Parameter(uniform(gh), "b_ih", decay=False)
        self.b_hh = Parameter(uniform(gh), "b_hh", decay=False)
        return (t, self.hidden) if self.return_sequences else (self.hidden,)

    def parameters(self):
        return [self.W_ih, self.W_hh, self.b_ih, self.b_hh]

    def reset_state(self):
        """Forget the state carried between batches (stateful mode)."""
        self.carried_state = None

    def check_input(self, x):
        if x.ndim != 3 or x.shape[2] != self.input_shape[1]:
            raise ValueError(f"{self.name} ({type(self).__name__}) expects sequences of shape "
                             f"(N, T, {self.input_shape[1]}), got {tuple(x.shape)}")
        if x.dtype.kind != "f":
            raise ValueError(f"{self.name} ({type(self).__name__}) expects a floating-point array, "
                             f"got dtype {x.dtype}")

    def _initial_state(self, n, dtype, initial_state):
        if initial_state is None and self.stateful and self.carried_state is not None \
                and self.carried_state[0].shape[0] == n:
            return self.carried_state
        if initial_state is None:
            return tuple(np.zeros((n, self.hidden), dtype=dtype) for _ in range(self.state_count))
        state = (initial_state,) if self.state_count == 1 and not isinstance(initial_state, tuple) \
            else tuple(initial_state)
        state = tuple(np.asarray(s) for s in state)
        expected = (n, self.hidden)
        if len(state) != self.state_count or any(s.shape != expected for s in state):
            raise ValueError(f"{self.name} ({type(self).__name__}) expects an initial state of "
                             f"{self.state_count} array(s) of shape {expected}, got "
                             f"{[np.shape(s) for s in state]}")
        return tuple(np.asarray(s, dtype=dtype) for s in state)

    def forward(self, x, training=False, initial_state=None):
        """Run the time loop; the sequence length T may differ from the built one."""
        self.check_input(x)
        n, steps, _ = x.shape
        state = state0 = self._initial_state(n, x.dtype, initial_state)
        projected = (x.reshape(n * steps, -1) @ self.W_ih.data.T).reshape(n, steps, -1)  # (N, T, G*H)
        projected += self._input_bias()
        hs = np.empty((n, steps, self.hidden), dtype=x.dtype)                 # h_1 .. h_T
        caches = []
        with np.errstate(over="ignore"):   # e^{-a} -> inf inside sigmoid_ is correct, not an error
            for t in range(steps):
                state, cache = self._step(projected[:, t], state)
                hs[:, t] = state[0]
                caches.append(cache)
        self._cache = (x, hs, caches, state0)
        if self.stateful:
            self.carried_state = tuple(s.copy() for s in state)
        return hs if self.return_sequences else hs[:, -1]

    def _input_bias(self):
        return self.b_ih.data + self.b_hh.data

    def backward(self, dy):
        x, hs, caches, state0 = self._cache
        n, steps, _ = x.shape
        dhs = dy if self.return_sequences else None
        d_state = [np.zeros((n, self.hidden), dtype=x.dtype) for _ in range(self.state_count)]
        d_projected = np.empty((n, steps, self.gates * self.hidden), dtype=x.dtype)   # ∂C/∂(gate pre-activations)
        d_hidden_proj = self._hidden_grad_buffer(n, steps, x.dtype)
        if not self.return_sequences:
            d_state[0] += dy
        for t in reversed(range(steps)):
            if dhs is not None:
                d_state[0] += dhs[:, t]
            d_state = self._step_back(d_state, caches[t], d_projected, d_hidden_proj, t)
        h_prev = np.concatenate([state0[0][:, None], hs[:, :-1]], axis=1)     # (N, T, H): h_0 .. h_{T-1}
        self._weight_grads(x, h_prev, d_projected, d_hidden_proj)
        self.initial_state_grad = d_state[0] if self.state_count == 1 else tuple(d_state)
        return (d_projected.reshape(n * steps, -1) @ self.W_ih.data).reshape(x.shape)   # (N, T, D)

    def _hidden_grad_buffer(self, n, steps, dtype):
        return None  # ∂C/∂(h W_hhᵀ) equals ∂C/∂(x W_ihᵀ) except in the GRU

    def _weight_grads(self, x, h_prev, d_projected, d_hidden_proj):
        n, steps, d = x.shape
        gh = self.gates * self.hidden
        dz = d_projected.reshape(n * steps, gh)                                # (N*T, G*H)
        dz_h = dz if d_hidden_proj is None else d_hidden_proj.reshape(n * steps, gh)
        self.W_ih.grad = dz.T @ x.reshape(n * steps, d)                       # (G*H, D)
        self.b_ih.grad = dz.sum(axis=0)
        self.W_hh.grad = dz_h.T @ h_prev.reshape(n * steps, self.hidden)      # (G*H, H)
        self.b_hh.grad = dz_h.sum(axis=0)

    def flops(self):
        t, d = self.input_shape
        return 2 * (t or 1) * self.gates * self.hidden * (d + self.hidden)


class RNN(Recurrent):
    """Elman RNN: ``h_t = act(x_t W_ihᵀ + b_ih + h_{t-1} W_hhᵀ + b_hh)``, act = tanh or relu.

    BPTT step: ``a_t`` = the pre-activation, ``dh_t`` = ∂C/∂h_t (from the
    output and from step t+1)::

        da_t = dh_t ⊙ act'(a_t)          (1 - h_t² for tanh, [h_t > 0] for relu)
        dh_{t-1} = da_t W_hh
    """

    kind = "rnn"

    def __init__(self, hidden, activation="tanh", return_sequences=False, stateful=False):
        super().__init__(hidden, return_sequences, stateful)
        if activation not in ("tanh", "relu"):
            raise ValueError(f"activation must be 'tanh' or 'relu', got {activation!r}")
        self.activation = activation

    def _step(self, projected_t, state):
        h_prev, = state
        a = projected_t + h_prev @ self.W_hh.data.T
        h = np.tanh(a) if self.activation == "tanh" else np.maximum(a, 0)
        return (h,), {"state_in": state, "h": h}

    def _step_back(self, d_state, cache, d_projected, d_hidden_proj, t):
        dh, = d_state
        h = cache["h"]
        da = dh * (1 - h * h) if self.activation == "tanh" else dh * (h > 0)
        d_projected[:, t] = da
        return [da @ self.W_hh.data]


class LSTM(Recurrent):
    """Long short-term memory, as PyTorch documents it::

        i = σ(a_i), f = σ(a_f), g = tanh(a_g), o = σ(a_o)     a = x_t W_ihᵀ + b_ih + h_{t-1} W_hhᵀ + b_hh
        c_t = f ⊙ c_{t-1} + i ⊙ g
        h_t = o ⊙ tanh(c_t)

    BPTT step, with dh = ∂C/∂h_t and dc = ∂C/∂c_t from step t+1::

        dc ← dc + dh ⊙ o ⊙ (1 - tanh²(c_t))
        da_i = dc ⊙ g ⊙ i(1-i),  da_f = dc ⊙ c_{t-1} ⊙ f(1-f)
        da_g = dc ⊙ i ⊙ (1-g²),  da_o = dh ⊙ tanh(c_t) ⊙ o(1-o)
        dh_{t-1} = da W_hh,      dc_{t-1} = dc ⊙ f
    """

    kind = "lstm"
    gates = 4
    state_count = 2

    def _step(self, projected_t, state):
        h_prev, c_prev = state
        hsz = self.hidden
        a = projected_t + h_prev @ self.W_hh.data.T                           # (N, 4H)
        # One sigmoid over all four gates: tanh(a_g) = 2σ(2a_g) - 1.
        g = a[:, 2 * hsz:3 * hsz]
        g *= 2
        sigmoid_(a)
        g *= 2
        g -= 1
        i, f, o = a[:, :hsz], a[:, hsz:2 * hsz], a[:, 3 * hsz:]
        c = f * c_prev + i * g
        tanh_c = np.tanh(c)
        h = o * tanh_c
        return (h, c), {"state_in": state, "gates": a, "tanh_c": tanh_c}

    def _step_back(self, d_state, cache, d_projected, d_hidden_proj, t):
        dh, dc = d_state
        gates, tanh_c, c_prev = cache["gates"], cache["tanh_c"], cache["state_in"][1]
        hsz = self.hidden
        i, f, g, o = (gates[:, k * hsz:(k + 1) * hsz] for k in range(4))
        dc = dc + dh * o * (1 - tanh_c * tanh_c)
        da = d_projected[:, t]                                                # (N, 4H) view
        # ∂C/∂(gate outputs), block by block, then times each gate's derivative,
        # computed for all four blocks at once: σ' = s(1 - s), and tanh' = 1 - g² for g.
        np.multiply(dc, g, out=da[:, :hsz])
        np.multiply(dc, c_prev, out=da[:, hsz:2 * hsz])
        np.multiply(dc, i, out=da[:, 2 * hsz:3 * hsz])
        np.multiply(dh, tanh_c, out=da[:, 3 * hsz:])
        slope = gates * (1 - gates)                                           # σ' for i, f, o
        slope[:, 2 * hsz:3 * hsz] = 1 - g * g                                 # tanh' for g
        da *= slope
        return [da @ self.W_hh.data, dc * f]


class GRU(Recurrent):
    """Gated recurrent unit, as PyTorch documents it (reset gate inside the product)::

        r = σ(x W_irᵀ + b_ir + h W_hrᵀ + b_hr)
        z = σ(x W_izᵀ + b_iz + h W_hzᵀ + b_hz)
        n = tanh(x W_inᵀ + b_in + r ⊙ (h W_hnᵀ + b_hn))
        h_t = (1 - z) ⊙ n + z ⊙ h_{t-1}

    BPTT step, with dh = ∂C/∂h_t and u = h W_hnᵀ + b_hn::

        dn = dh ⊙ (1 - z),  dz = dh ⊙ (h_{t-1} - n)
        da_n = dn ⊙ (1 - n²),  dr = da_n ⊙ u
        da_r = dr ⊙ r(1-r),    da_z = dz ⊙ z(1-z)
        ∂C/∂(x W_ihᵀ) = [da_r, da_z, da_n],  ∂C/∂(h W_hhᵀ) = [da_r, da_z, da_n ⊙ r]
        dh_{t-1} = dh ⊙ z + ∂C/∂(h W_hhᵀ) W_hh
    """

    kind = "gru"
    gates = 3

    def _input_bias(self):
        return self.b_ih.data  # b_hh goes inside the step: b_hn is multiplied by r

    def _step(self, projected_t, state):
        h_prev, = state
        hsz = self.hidden
        hidden_proj = h_prev @ self.W_hh.data.T + self.b_hh.data              # (N, 3H)
        rz = sigmoid_(projected_t[:, :2 * hsz] + hidden_proj[:, :2 * hsz])
        r, z = rz[:, :hsz], rz[:, hsz:]
        u = hidden_proj[:, 2 * hsz:]
        n = np.tanh(projected_t[:, 2 * hsz:] + r * u)
        h = (1 - z) * n + z * h_prev
        return (h,), {"state_in": state, "r": r, "z": z, "n": n, "u": u}

    def _hidden_grad_buffer(self, n, steps, dtype):
        return np.empty((n, steps, 3 * self.hidden), dtype=dtype)

    def _step_back(self, d_state, cache, d_projected, d_hidden_proj, t):
        dh, = d_state
        r, z, n_, u = cache["r"], cache["z"], cache["n"], cache["u"]
        h_prev = cache["state_in"][0]
        hsz = self.hidden
        da_n = dh * (1 - z) * (1 - n_ * n_)
        da_r = da_n * u * r * (1 - r)
        da_z = dh * (h_prev - n_) * z * (1 - z)
        dx_part, dh_part = d_projected[:, t], d_hidden_proj[:, t]
        dx_part[:, :hsz] = dh_part[:, :hsz] = da_r
        dx_part[:, hsz:2 * hsz] = dh_part[:, hsz:2 * hsz] = da_z
        dx_part[:, 2 * hsz:] = da_n
        dh_part[:, 2 * hsz:] = da_n * r
        return [dh * z + dh_part @ self.W_hh.data]


# Networks saved before Embedding had its own module name it here.
from .embedding import Embedding  # noqa: E402,F401
