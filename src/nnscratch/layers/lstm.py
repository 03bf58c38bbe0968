"""The LSTM cell, fast: forward time loop and backpropagation through time.

The same cell one step at a time, as the equations read, is
``recurrent_naive.lstm_step_forward`` / ``lstm_step_backward``
(``LSTM(H, impl="naive")``): read that first. The tricks used here are
listed in recurrent.py's docstring and named again where they are used.
"""
import numpy as np

from . import recurrent_naive as naive
from .recurrent import Recurrent, sigmoid_of_negated_, sigmoid_slope_times, tanh_slope_times


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

    The factors that involve neither dh nor dc (g ⊙ i(1-i), ..., o ⊙ (1 - tanh²))
    are computed for all steps at once before the backward loop, so that each
    step of the loop is one matrix product and a few elementwise products.

    Parameters and shapes: see ``Recurrent``; G = 4 gate blocks, state (h, c).
    """

    kind = "lstm"
    gates = 4
    state_count = 2
    _naive_step = staticmethod(naive.lstm_step_forward)
    _naive_step_back = staticmethod(naive.lstm_step_backward)

    def _gate_scale(self, dtype):
        """-1 on the i, f, o rows and -2 on the g rows of the stacked weights.

        Trick 4. The loop's matrix product then gives -a (and -2a_g) directly, so that all
        four gates are one σ(a) = 1 / (1 + e^{-a}) with no negation pass, using
        tanh(a_g) = 2σ(2a_g) - 1: the naive twin's four lines ``i = sigmoid(a_i)``
        ... ``o = sigmoid(a_o)`` in one exp, one add and one reciprocal pass over
        (4H, N). Scaling by -1 and -2 is exact in floating point. Measured op by op
        (28 steps of a (512, 64) float32 block, interleaved, best of 40 rounds):
        1.75 ms, against 1.86 ms with a negation pass and 1.85 ms with σ on i, f, o
        and ``np.tanh`` on g; about 0.1 ms of an 11 ms batch.
        """
        scale = np.full(4 * self.hidden, -1, dtype=dtype)
        scale[2 * self.hidden:3 * self.hidden] = -2
        return scale

    def _step_weights(self):
        weights = super()._step_weights()
        return weights * self._gate_scale(weights.dtype)[:, None]

    def _loop(self, inputs, d, state0):
        steps, n = len(inputs) - 1, inputs.shape[2]
        h, dtype = self.hidden, inputs.dtype
        hs = inputs[:, d + 1:]                                               # h_0 .. h_T
        cs = self.buffer("cs", (steps + 1, h, n), dtype)                    # c_0 .. c_T
        tanh_cs = self.buffer("tanh_cs", (steps, h, n), dtype)              # tanh(c_1) .. tanh(c_T)
        gates = self.buffer("gates", (steps, 4, h, n), dtype)               # -a, then [i, f, g, o]
        i_times_g = self.buffer("i_times_g", (h, n), dtype)
        cs[0] = state0[1]
        weights = self._step_weights()                                       # (4H, D+1+H), scaled
        for t in range(steps):
            # -a = -(x_t W_ihᵀ + b_ih + h_{t-1} W_hhᵀ + b_hh), -2a on the g rows: one product (trick 2)
            a = gates[t].reshape(4 * h, n)
            np.matmul(weights, inputs[t], out=a)
            # i, f, o = σ(a_i), σ(a_f), σ(a_o) and σ(2a_g) in one pass over all four gates (trick 4)
            sigmoid_of_negated_(a)
            i, f, g, o = gates[t]
            g *= 2                                                           # g = tanh(a_g) = 2σ(2a_g) - 1
            g -= 1
            np.multiply(f, cs[t], out=cs[t + 1])                             # c_t = f ⊙ c_{t-1} + i ⊙ g
            np.multiply(i, g, out=i_times_g)
            cs[t + 1] += i_times_g
            np.tanh(cs[t + 1], out=tanh_cs[t])                               # h_t = o ⊙ tanh(c_t), written
            np.multiply(o, tanh_cs[t], out=hs[t + 1])                        # into z_{t+1} (trick 2)
        self._cache_cells = (gates, cs, tanh_cs)
        return hs[-1], cs[-1]

    def _loop_back(self, dy_steps, dh):
        gates, cs, tanh_cs = self._cache_cells                               # gates (T, 4, H, N)
        steps, _, h, n = gates.shape
        dtype = gates.dtype
        i, f, g, o = gates[:, 0], gates[:, 1], gates[:, 2], gates[:, 3]     # (T, H, N) each
        # Trick 4: the factors of the naive twin's da_i, da_f, da_g, da_o and of its dc update
        # that involve neither dh nor dc, for all T steps in one pass each (in the loop they
        # would be 5 x T small passes: 0.46 ms against 0.75 ms per batch, op by op).
        # ∂c_t/∂a for the i, f, g blocks, in their order within a: (T, 3, H, N). Written
        # with out= throughout: a temporary here would be a fresh megabyte per pass (trick 3).
        dc_da = self.buffer("dc_da", (steps, 3, h, n), dtype)
        sigmoid_slope_times(i, g, out=dc_da[:, 0])                           # g ⊙ i(1-i)
        sigmoid_slope_times(f, cs[:-1], out=dc_da[:, 1])                     # c_{t-1} ⊙ f(1-f)
        tanh_slope_times(g, i, out=dc_da[:, 2])                              # i ⊙ (1-g²)
        dh_dao = sigmoid_slope_times(o, tanh_cs, out=self.buffer("dh_dao", (steps, h, n), dtype))
        dh_dc = tanh_slope_times(tanh_cs, o, out=self.buffer("dh_dc", (steps, h, n), dtype))

        # ∂C/∂a_t, stored gate-major and steps side by side, (4, H, T, N): step t is the strided
        # (4H, N) slice [:, :, t], and the whole is already the (4H, T·N) matrix of the weight
        # gradient's product, which then needs no copy (_side_by_side; 0.5 ms a batch).
        d_gates = self.buffer("d_gates", (4, h, steps, n), dtype)
        dc = np.zeros((h, n), dtype=dtype)
        dc_from_h = self.buffer("dc_from_h", (h, n), dtype)
        w_hh_t = np.ascontiguousarray(self.W_hh.data.T)                     # (H, 4H)
        for t in reversed(range(steps)):
            if dy_steps is not None:
                dh += dy_steps[t]
            np.multiply(dh, dh_dc[t], out=dc_from_h)                         # dc += dh ⊙ o ⊙ (1 - tanh²(c_t))
            dc += dc_from_h
            np.multiply(dc, dc_da[t], out=d_gates[:3, :, t])                 # da_i, da_f, da_g
            np.multiply(dh, dh_dao[t], out=d_gates[3, :, t])                 # da_o
            dh = w_hh_t @ d_gates[:, :, t].reshape(4 * h, n)                 # dh_{t-1} = da W_hh: (H, N)
            dc *= f[t]                                                       # dc_{t-1} = dc ⊙ f
        return d_gates.reshape(4 * h, steps, n).transpose(1, 0, 2), None, (dh, dc)   # (T, 4H, N) view
