"""Recurrent layers (RNN, LSTM, GRU) with backpropagation through time.

Input ``x`` (N, T, D); output the hidden state of every step (N, T, H) with
``return_sequences=True``, or of the last step (N, H). Weights follow
PyTorch's ``nn.RNN/LSTM/GRU`` (single layer, ``batch_first=True``):
``W_ih`` (G·H, D), ``W_hh`` (G·H, H), ``b_ih`` and ``b_hh`` (G·H,), the G
gate blocks stacked in PyTorch's order (LSTM i, f, g, o; GRU r, z, n), all
initialized from U(-1/√H, 1/√H) as PyTorch does.

Two implementations, chosen per layer as for ``Conv2D``: ``RNN(H,
impl="naive")``, ``net.add_lstm_layer(H, impl="naive")``.

- ``impl="naive"``: recurrent_naive.py, **read it first**. One time step
  at a time, written line by line from the equations in each class's
  docstring: batch-first (N, H) arrays, separate ``x_t W_ihᵀ + b_ih`` and
  ``h_{t-1} W_hhᵀ + b_hh`` products, ``1 / (1 + e^{-a})`` and ``np.tanh``, new
  arrays at every step, and each backward line under the forward line it
  differentiates.
- ``impl="fast"`` (default): this module, lstm.py and gru.py. The same
  parameters (names, shapes, order, initial values: one seed gives one set of
  weights, and weights move between the two) and the same numbers up to
  float rounding (tests/test_recurrent_twins.py), computed with the tricks
  below. Each trick is named again where it is used, with the line of the
  naive twin it computes and what it saved, measured on the sequential-MNIST
  LSTM (128 units, batches of 64 x 28 steps, float32) on the shared 2-core
  machine of the benchmarks (benchmarks/README.md, "The LSTM: where its time
  goes"). There, the naive twin takes 1.4 to 1.8 times as long per batch
  (forward and backward of a 128-unit layer on 64 x 28 x 28, float32; the
  range is two runs on the shared machine).

The tricks:

1. **Feature-major storage.** Inside, the arrays are time-major and
   feature-major: h_t is stored as a column per sample, (H, N), and step t of
   every array is one contiguous block (T, ·, N), so each gate is a
   contiguous (H, N) slice and the elementwise gate arithmetic runs over long
   contiguous rows. (With samples as rows, (N, G·H), every gate is a strided
   slice: the LSTM forward loop took 5.8 ms per batch instead of 4.5 ms, a
   recurrent product 81 µs per step instead of 58 µs.) Users see (N, T, ·).
2. **One product per step.** Step t reads the column
   ``z_t = [x_t; 1; h_{t-1}]`` (D+1+H, N), so its pre-activations
   ``a_t = x_t W_ihᵀ + b_ih + h_{t-1} W_hhᵀ + b_hh`` are one matrix product
   ``[W_ih | b_ih + b_hh | W_hh] z_t`` (each bias is the weight of a constant
   input 1), and the loop writes h_t straight into the rows of z_{t+1}. Its
   backward is one product too: the weight and bias gradients of all steps
   at once (below). Measured on whole LSTM epochs, old and new side by side:
   11.50 -> 11.19 s and 13.18 -> 12.01 s.
3. **Reused arrays** (workspace.py, ``Layer.buffer``): the per-batch arrays
   are megabytes, and fresh ones each batch cost page faults (the LSTM
   backward's precomputation: 4.1 ms with fresh arrays, 1.3 ms reused).
4. **Fewer elementwise passes.** The LSTM's weights are pre-scaled so that
   the product gives -a (and -2a for g) and all four gates are one
   ``σ = 1 / (1 + e^{-a})`` pass, with tanh(a_g) = 2σ(2a_g) - 1 (lstm.py);
   in backward, the factors of each step's derivative that do not depend
   on the incoming gradient are computed for all steps at once before the
   loop, and the first layer skips ``dx`` (``needs_input_grad``). Op by op,
   per batch: the gate pass 1.75 ms against 1.85-1.86 ms without the
   pre-scaling; the LSTM's backward factors 0.46 ms against 0.75 ms step
   by step.

The fast forward time loop is ``_loop``; backward (``_loop_back``) runs it
in reverse, carrying ∂C/∂h (and ∂C/∂c) from step t to step t-1. The weight
gradients, being sums over steps and samples, ``Σ_t (∂C/∂a_t) z_tᵀ``, are one
matrix product after it (trick 2).

The LSTM and GRU cells are in lstm.py and gru.py.

Stateful mode (``stateful=True``, truncated BPTT): the final state of one
batch is the initial state of the next (when the batch size matches), but
gradients stop at the batch boundary. ``reset_state()`` forgets it.
"""
import numpy as np

from . import recurrent_naive as naive
from .base import Layer, Parameter


def sigmoid_(a):
    """σ(a) = 1 / (1 + e^{-a}) in place, returning ``a``: the naive twin's
    ``sigmoid(a)`` in four passes over ``a`` and no new array.

    (This said NumPy's float32 ``exp`` was about twice as fast as its
    ``tanh``; measured again on the 2-core AMD EPYC, NumPy 2, a (512, 64)
    block takes 50-56 µs in ``exp`` and 49 µs in ``tanh``: about the same.) For
    a < -88 (float32) ``e^{-a}`` overflows to inf and σ correctly comes out 0;
    the caller silences that overflow warning with ``np.errstate``.
    """
    np.negative(a, out=a)
    return sigmoid_of_negated_(a)


def sigmoid_slope_times(s, other, out):
    """out = s(1 - s) ⊙ other, the sigmoid's derivative from its output s, in ``out``."""
    np.subtract(1, s, out=out)
    out *= s
    out *= other
    return out


def tanh_slope_times(t, other, out):
    """out = (1 - t²) ⊙ other, tanh's derivative from its output t, in ``out``."""
    np.multiply(t, t, out=out)
    np.subtract(1, out, out=out)
    out *= other
    return out


def sigmoid_of_negated_(minus_a):
    """σ(a) from ``minus_a`` = -a, in place: 1 / (1 + e^{-a})."""
    np.exp(minus_a, out=minus_a)
    minus_a += 1
    return np.reciprocal(minus_a, out=minus_a)


class Recurrent(Layer):
    """Shared machinery; subclasses define ``gates`` (G), the fast ``_loop`` and
    ``_loop_back``, and the naive twin's ``_naive_step`` and ``_naive_step_back``.

    Parameters
    ----------
    hidden : int
        State size H.
    return_sequences : bool
        Output every step (N, T, H) or only the last (N, H).
    stateful : bool
        Carry the final state to the next batch (without gradient).
    impl : {"fast", "naive"}
        The fast time loop (this module, lstm.py, gru.py) or the step-by-step
        teaching version (recurrent_naive.py); same parameters, same results.

    ``forward(x, training, initial_state=None)`` takes an optional initial
    state (h0 (N, H), or (h0, c0) for the LSTM); after ``backward``,
    ``initial_state_grad`` holds its gradient in the same form.

    The subclass hooks: ``_loop(inputs, d, state0)`` gets the step columns
    ``inputs`` (T+1, D+1+H, N) with h_0 in place, writes h_t into
    ``inputs[t, d+1:]`` and returns the final state as (H, N) arrays;
    ``_loop_back(dy_steps, dh)`` returns ∂C/∂a (T, G*H, N), the GRU's
    ∂C/∂(W_hh h + b_hh) or None, and the initial state's gradient (as (H, N)
    arrays). ``_naive_step`` and ``_naive_step_back`` are the cell's step
    functions from recurrent_naive.py.
    """

    gates = 1
    state_count = 1  # arrays in the state: h, or (h, c) for the LSTM
    impl = "fast"    # the class default: what networks saved before impl existed get on loading

    def __init__(self, hidden, return_sequences=False, stateful=False, impl="fast"):
        super().__init__()
        if int(hidden) != hidden or hidden < 1:
            raise ValueError(f"hidden must be a positive integer, got {hidden!r}")
        if impl not in ("fast", "naive"):
            raise ValueError(f"impl must be 'fast' or 'naive', got {impl!r}")
        self.hidden = int(hidden)
        self.return_sequences = bool(return_sequences)
        self.stateful = bool(stateful)
        self.impl = impl
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
        state0 = self._initial_state(x.shape[0], x.dtype, initial_state)    # (N, H) arrays
        run = self._naive_forward if self.impl == "naive" else self._fast_forward
        with np.errstate(over="ignore"):   # e^{-a} -> inf inside a sigmoid is correct, not an error
            y, final_state = run(x, state0)                                  # final state: (N, H) arrays
        if self.stateful:
            self.carried_state = tuple(s.copy() for s in final_state)      # the caller's, not a cached array
        return y

    def backward(self, dy):
        dx, d_state0 = self._naive_backward(dy) if self.impl == "naive" else self._fast_backward(dy)
        self.initial_state_grad = d_state0[0] if self.state_count == 1 else d_state0
        return dx

    # -- the teaching version: recurrent_naive.py, one step at a time -------------------------
    def _naive_forward(self, x, state0):
        weights = tuple(p.data for p in self.parameters())                   # W_ih, W_hh, b_ih, b_hh
        hs, final_state, caches = naive.forward_through_time(self._naive_step, x, state0, weights)
        self._cache_steps = caches
        return (hs if self.return_sequences else hs[:, -1].copy()), final_state   # (N, T, H) or (N, H)

    def _naive_backward(self, dy):
        caches = self._cache_steps
        if self.return_sequences:
            dhs = dy                                                         # (N, T, H)
        else:   # only h_T reached the output
            dhs = np.zeros((dy.shape[0], len(caches), self.hidden), dtype=dy.dtype)
            dhs[:, -1] = dy
        d_final = tuple(np.zeros_like(dhs[:, 0]) for _ in range(self.state_count))
        dx, d_state0, grads = naive.backward_through_time(self._naive_step_back, dhs, d_final, caches,
                                                          self.needs_input_grad)
        for p, grad in zip(self.parameters(), grads):
            p.grad = grad
        return dx, d_state0

    # -- the fast version ------------------------------------------------------------------------
    def _fast_forward(self, x, state0):
        n, steps, d = x.shape
        # Trick 2 (one product per step): z_t = [x_t; 1; h_{t-1}] for every step, in one buffer
        # whose h rows the loop fills in as it goes. Trick 1: stored feature-major, (T+1, D+1+H, N).
        # Trick 3: a reused buffer (Layer.buffer), not a fresh array each batch.
        inputs = self.buffer("inputs", (steps + 1, d + 1 + self.hidden, n), x.dtype)   # z_0 .. z_T
        inputs[:steps, :d] = x.transpose(1, 2, 0)
        inputs[:steps, d] = 1
        hs = inputs[:, d + 1:]                 # (T+1, H, N) view: h_0 .. h_T, the loop writes h_t
        hs[0] = state0[0].T
        self._cache_input = (inputs, d)
        final_state = self._loop(inputs, d, tuple(s.T for s in state0))
        if self.return_sequences:
            y = hs[1:].transpose(2, 0, 1).copy()                             # (N, T, H), C order
        else:
            y = hs[-1].T.copy()                                              # (N, H)
        return y, tuple(s.T for s in final_state)                            # (N, H) views

    def _hidden_states(self):
        """h_0 .. h_T of the last forward, (T+1, H, N)."""
        inputs, d = self._cache_input
        return inputs[:, d + 1:]

    def _step_weights(self):
        """[W_ih | b_ih + b_hh | W_hh] (G*H, D+1+H): a_t is this times z_t."""
        return np.concatenate([self.W_ih.data, (self.b_ih.data + self.b_hh.data)[:, None],
                               self.W_hh.data], axis=1)

    def _fast_backward(self, dy):
        inputs, d = self._cache_input
        steps, n = len(inputs) - 1, inputs.shape[2]
        if self.return_sequences:
            dy_steps = self.buffer("dy_steps", (steps, self.hidden, n), dy.dtype)
            dy_steps[...] = dy.transpose(1, 2, 0)                            # (T, H, N)
            d_last = np.zeros((self.hidden, n), dtype=dy.dtype)
        else:
            dy_steps, d_last = None, dy.T.copy()
        d_projected, d_hidden_proj, d_state0 = self._loop_back(dy_steps, d_last)   # (T, G*H, N)
        d_state0 = tuple(s.T.copy() for s in d_state0)                       # (N, H)
        # Trick 2, backward: the naive twin adds dW_ih += da_tᵀ x_t, dW_hh += da_tᵀ h_{t-1},
        # db += Σ_n da_t at each step (linear_backward). Here ∂C/∂[W_ih | b | W_hh] =
        # Σ_t Σ_n (∂C/∂a_t) z_tᵀ is one product over all steps' columns side by side: one
        # large product instead of 2T small ones (LSTM batch: copies 0.9 ms, product ~1.9 ms).
        dz = self._side_by_side("dz", d_projected)                           # (G*H, T*N)
        z = self._side_by_side("z_columns", inputs[:-1])                    # (D+1+H, T*N)
        if d_hidden_proj is None:
            grad = dz @ z.T                                                  # (G*H, D+1+H)
            # The slices overlap on column d, the constant input 1: b_ih and b_hh both add to a,
            # so ∂C/∂b_ih = ∂C/∂b_hh = Σ_t Σ_n ∂C/∂a_t, that one column.
            grad_ih, grad_hh = grad[:, :d + 1], grad[:, d:]
        else:   # the GRU: ∂C/∂(W_hh h + b_hh) differs from ∂C/∂(W_ih x + b_ih) (r multiplies h_n)
            grad_ih = dz @ z[:d + 1].T                                       # (G*H, D+1)
            grad_hh = self._side_by_side("dz_h", d_hidden_proj) @ z[d:].T    # (G*H, 1+H)
        self.W_ih.grad, self.b_ih.grad = np.ascontiguousarray(grad_ih[:, :d]), grad_ih[:, d].copy()
        self.b_hh.grad, self.W_hh.grad = grad_hh[:, 0].copy(), np.ascontiguousarray(grad_hh[:, 1:])
        if not self.needs_input_grad:   # Trick 4: the first layer's dx is read by nobody
            return None, d_state0
        # dx_t = da_t W_ih for all steps in one product over the side-by-side columns (the naive
        # twin: one per step)
        dx_columns = self.W_ih.data.T @ dz                                   # (D, T*N)
        return dx_columns.reshape(d, steps, n).transpose(2, 1, 0), d_state0  # (N, T, D)

    def _side_by_side(self, name, per_step):
        """(T, K, N) -> (K, T*N): the columns of all steps next to each other (a copy, unless
        ``per_step`` is a view of memory laid out that way, as the LSTM's ∂C/∂a is)."""
        steps, k, n = per_step.shape
        if per_step.transpose(1, 0, 2).flags.c_contiguous:
            return per_step.transpose(1, 0, 2).reshape(k, steps * n)
        columns = self.buffer(name, (k, steps, n), per_step.dtype)
        columns[...] = per_step.transpose(1, 0, 2)
        return columns.reshape(k, steps * n)

    def flops(self):
        t, d = self.input_shape
        return 2 * (t or 1) * self.gates * self.hidden * (d + self.hidden)


class RNN(Recurrent):
    """Elman RNN: ``h_t = act(x_t W_ihᵀ + b_ih + h_{t-1} W_hhᵀ + b_hh)``, act = tanh or relu.

    BPTT step: ``a_t`` = the pre-activation, ``dh_t`` = ∂C/∂h_t (from the
    output and from step t+1)::

        da_t = dh_t ⊙ act'(a_t)          (1 - h_t² for tanh, [h_t > 0] for relu)
        dh_{t-1} = da_t W_hh

    Line by line, one step at a time: ``recurrent_naive.rnn_step_forward`` and
    ``rnn_step_backward`` (``impl="naive"``); below, the fast loop.
    """

    kind = "rnn"

    def __init__(self, hidden, activation="tanh", return_sequences=False, stateful=False, impl="fast"):
        super().__init__(hidden, return_sequences, stateful, impl)
        if activation not in ("tanh", "relu"):
            raise ValueError(f"activation must be 'tanh' or 'relu', got {activation!r}")
        self.activation = activation

    def _naive_step(self, x_t, state, weights):
        return naive.rnn_step_forward(x_t, state, weights, self.activation)

    _naive_step_back = staticmethod(naive.rnn_step_backward)

    def _loop(self, inputs, d, state0):
        steps = len(inputs) - 1
        hs = inputs[:, d + 1:]
        weights = self._step_weights()                                       # (H, D+1+H)
        for t in range(steps):
            # a = x_t W_ihᵀ + b_ih + h_{t-1} W_hhᵀ + b_hh as one product (trick 2), written
            # where h_t belongs, the h rows of z_{t+1}, and made h_t in place.
            h_new = hs[t + 1]                                                # a_t, then act(a_t) in place
            np.matmul(weights, inputs[t], out=h_new)
            if self.activation == "tanh":
                np.tanh(h_new, out=h_new)
            else:
                np.maximum(h_new, 0, out=h_new)
        return (hs[-1],)

    def _loop_back(self, dy_steps, dh):
        h_out = self._hidden_states()[1:]                                    # h_1 .. h_T: (T, H, N)
        # Trick 4: act'(a_t) for all steps in one pass before the loop; each step then is
        # da = dh ⊙ act'(a) and dh_{t-1} = W_hhᵀ da (the naive twin's first and last lines).
        slope = self.buffer("slope", h_out.shape, h_out.dtype)              # act'(a_t)
        if self.activation == "tanh":
            np.multiply(h_out, h_out, out=slope)
            np.subtract(1, slope, out=slope)
        else:
            np.greater(h_out, 0, out=slope)
        d_projected = self.buffer("d_projected", h_out.shape, h_out.dtype)  # ∂C/∂a_t
        w_hh_t = self.W_hh.data.T
        for t in reversed(range(len(h_out))):
            if dy_steps is not None:
                dh += dy_steps[t]
            np.multiply(dh, slope[t], out=d_projected[t])
            dh = w_hh_t @ d_projected[t]
        return d_projected, None, (dh,)

def __getattr__(name):
    """Networks pickled when Embedding, LSTM and GRU lived in this module still load."""
    if name in ("Embedding", "LSTM", "GRU"):
        from . import embedding, gru, lstm
        return {"Embedding": embedding.Embedding, "LSTM": lstm.LSTM, "GRU": gru.GRU}[name]
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
