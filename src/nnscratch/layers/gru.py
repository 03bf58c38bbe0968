"""The GRU cell, fast: forward time loop and backpropagation through time.

The same cell one step at a time, as the equations read, is
``recurrent_naive.gru_step_forward`` / ``gru_step_backward``
(``GRU(H, impl="naive")``): read that first. The tricks used here are
listed in recurrent.py's docstring and named again where they are used.
"""
import numpy as np

from . import recurrent_naive as naive
from .recurrent import Recurrent, sigmoid_, sigmoid_slope_times, tanh_slope_times


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

    As in the LSTM, the factors without dh are computed for all steps at once
    before the backward loop.
    """

    kind = "gru"
    gates = 3
    _naive_step = staticmethod(naive.gru_step_forward)
    _naive_step_back = staticmethod(naive.gru_step_backward)

    def _loop(self, inputs, d, state0):
        steps, n = len(inputs) - 1, inputs.shape[2]
        h, dtype = self.hidden, inputs.dtype
        hs = inputs[:, d + 1:]                                               # h_0 .. h_T
        # The reset gate multiplies only the hidden part of n, so the GRU keeps two products:
        # from_x = [W_ih | b_ih] [x_t; 1] for all steps in one product before the loop (it does
        # not depend on h), from_h = [b_hh | W_hh] [1; h_{t-1}] in it (trick 2, as far as it goes).
        gates = self.buffer("gates", (steps, 3 * h, n), dtype)              # becomes [r, z, n] in place
        np.matmul(np.concatenate([self.W_ih.data, self.b_ih.data[:, None]], axis=1),
                  inputs[:steps, :d + 1], out=gates)
        hidden_proj = self.buffer("hidden_proj", gates.shape, dtype)        # W_hh h_{t-1} + b_hh
        r_times_u = self.buffer("r_times_u", (h, n), dtype)
        w_hh = np.concatenate([self.b_hh.data[:, None], self.W_hh.data], axis=1)   # (3H, 1+H)
        for t in range(steps):
            np.matmul(w_hh, inputs[t, d:], out=hidden_proj[t])               # from_h = h_{t-1} W_hhᵀ + b_hh
            rz = gates[t, :2 * h]
            rz += hidden_proj[t, :2 * h]
            sigmoid_(rz)                                                     # r and z: one pass (trick 1)
            r, z, n_ = gates[t, :h], gates[t, h:2 * h], gates[t, 2 * h:]
            np.multiply(r, hidden_proj[t, 2 * h:], out=r_times_u)
            n_ += r_times_u
            np.tanh(n_, out=n_)                                              # n = tanh(x_n + r ⊙ h_n)
            # h_t = (1 - z) ⊙ n + z ⊙ h_{t-1} as n + z ⊙ (h_{t-1} - n): three passes instead of
            # four, written into z_{t+1} (trick 2)
            h_new = hs[t + 1]                                                # n + z ⊙ (h_{t-1} - n)
            np.subtract(hs[t], n_, out=h_new)
            h_new *= z
            h_new += n_
        self._cache_cells = (gates, hidden_proj[:, 2 * h:])
        return (hs[-1],)

    def _loop_back(self, dy_steps, dh):
        gates, u = self._cache_cells                                         # (T, 3H, N), (T, H, N)
        hs = self._hidden_states()
        steps, _, n = gates.shape
        h, dtype = self.hidden, gates.dtype
        r, z, n_ = gates[:, :h], gates[:, h:2 * h], gates[:, 2 * h:]         # (T, H, N) each
        # Trick 4: the factors without dh, for all steps at once (out= throughout, as in the LSTM).
        scratch = self.buffer("scratch", (steps, h, n), dtype)
        np.subtract(1, z, out=scratch)
        dan_dh = tanh_slope_times(n_, scratch, out=self.buffer("dan_dh", (steps, h, n), dtype))   # (1-z) ⊙ (1-n²)
        dar_dan = sigmoid_slope_times(r, u, out=self.buffer("dar_dan", (steps, h, n), dtype))     # u ⊙ r(1-r)
        np.subtract(hs[:-1], n_, out=scratch)
        daz_dh = sigmoid_slope_times(z, scratch, out=self.buffer("daz_dh", (steps, h, n), dtype))  # (h_{t-1}-n) ⊙ z(1-z)

        d_input = self.buffer("d_input", gates.shape, dtype)                # ∂C/∂(W_ih x_t)
        d_hidden = self.buffer("d_hidden", gates.shape, dtype)              # ∂C/∂(W_hh h_{t-1})
        through_z = self.buffer("through_z", (h, n), dtype)
        w_hh_t = self.W_hh.data.T
        for t in reversed(range(steps)):
            if dy_steps is not None:
                dh += dy_steps[t]
            da_r, da_z, da_n = d_input[t, :h], d_input[t, h:2 * h], d_input[t, 2 * h:]
            np.multiply(dh, dan_dh[t], out=da_n)
            np.multiply(da_n, dar_dan[t], out=da_r)
            np.multiply(dh, daz_dh[t], out=da_z)
            d_hidden[t, :2 * h] = d_input[t, :2 * h]
            np.multiply(da_n, r[t], out=d_hidden[t, 2 * h:])
            np.multiply(dh, z[t], out=through_z)
            dh = w_hh_t @ d_hidden[t]
            dh += through_z
        return d_input, d_hidden, (dh,)
