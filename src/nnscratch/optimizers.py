"""Optimizers: SGD (momentum, Nesterov), Adam, AdamW, RMSprop.

The update rules, hyperparameter names and defaults follow PyTorch's
documented ``torch.optim`` algorithms, so one step from the same state gives
the same parameters. Notation: ``θ`` a parameter, ``g`` its gradient, ``γ``
the learning rate ``lr``, ``λ`` ``weight_decay``, ``t`` the step count (from 1).

One departure, on purpose: weight decay applies only to parameters marked
``decay`` (weights), not to biases or normalization parameters, unless
``decay_all=True``. The L2 penalty it corresponds to is ``(λ/2) Σ ‖W‖²``.

An optimizer owns every buffer it needs (moments, scratch space, the copy
for ``undo_last_step``), one set per parameter, in ``state``. It updates each
parameter in place, ``θ ← θ - Δ``, so ``p.data`` is one array for the
parameter's whole life: code that holds ``layer.W.data`` sees every step.
Before writing, it copies the old values into its own ``previous`` buffer, so
``undo_last_step`` can put them back bit for bit (``fit`` does when the cost
turns non-finite).
"""
import numpy as np


class Optimizer:
    """Base class. Subclasses implement ``_delta(p, g, state)``: the amount Δ
    subtracted from θ this step (``g`` already includes coupled weight decay).

    When ``_delta`` runs, θ has been copied to ``state["previous"]`` (read it
    there) and ``p.data`` is free scratch space of θ's shape and dtype (the
    gradient's too): ``_delta`` may compute Δ in it (Adam and plain SGD do,
    needing no array of their own); the step then writes ``θ ← previous - Δ``
    into ``p.data``.

    Parameters
    ----------
    lr : float
        Learning rate γ.
    weight_decay : float
        λ; coupled L2 (``g ← g + λθ``) except in AdamW.
    clip_norm : float or None
        If set, gradients are scaled by ``min(1, clip_norm / ‖g‖)`` where
        ``‖g‖`` is the norm of all gradients together (global norm).
    decay_all : bool
        Apply weight decay to biases and normalization parameters too.
    """

    def __init__(self, lr, weight_decay=0.0, clip_norm=None, decay_all=False):
        if not lr > 0:
            raise ValueError(f"lr must be positive, got {lr!r}")
        if weight_decay < 0:
            raise ValueError(f"weight_decay must be >= 0, got {weight_decay!r}")
        if clip_norm is not None and not clip_norm > 0:
            raise ValueError(f"clip_norm must be positive or None, got {clip_norm!r}")
        self.lr = float(lr)
        self.weight_decay = float(weight_decay)
        self.clip_norm = clip_norm
        self.decay_all = decay_all
        self.t = 0
        self.state = None  # one dict per parameter, in order, made at the first step
        self._last_params = []

    def _decays(self, p):
        return self.weight_decay > 0 and (p.decay or self.decay_all)

    coupled_decay = True  # False in AdamW, which decays outside the gradient

    def step(self, params):
        """Update every parameter in place from its ``.grad``: ``θ ← θ - Δ``.

        ``Δ`` comes from ``_delta``; the values before the step are kept in
        the optimizer's ``previous`` buffer of each parameter for ``undo_last_step``.
        """
        if (self.state is None or len(self.state) != len(params)
                or self.state[0]["previous"].dtype != params[0].data.dtype):  # new, or cast (astype)
            self.state = [{"previous": np.empty_like(p.data)} for p in params]
        self.t += 1
        scale = self._clip_scale(params) if self.clip_norm is not None else None
        decay = self.weight_decay if self.coupled_decay else 0.0
        for p, state in zip(params, self.state):
            g = p.grad if scale is None else p.grad * scale
            if decay and (p.decay or self.decay_all):
                g = g + decay * p.data
            previous = state["previous"]
            # COPY_FOR_UNDO: θ into the optimizer's own buffer, for undo_last_step, so that
            # p.data stays one array (the old design wrote θ - Δ into a second array and
            # swapped it in: no copy, but a new p.data every step). Measured against that
            # design (AMD EPYC, 2 shared cores, OpenBLAS 0.3.31 Haswell, NumPy 2.4.6), whole
            # fits in one process, epochs alternating, bit-identical weights: mlp800 (Adam)
            # 0.97-1.01x, mlp50 (SGD) 1.02-1.045x (the 157 KB copy is ~5 µs of a 190 µs batch).
            # The mlp800 step alone, right after a training step: 1.00-1.03x in most runs,
            # 1.4-1.6x in some processes (not with one BLAS thread: 1.03x). What keeps it near
            # 1x is Adam computing Δ in p.data rather than in an array of its own (1.12x).
            previous[...] = p.data
            np.subtract(previous, self._delta(p, g, state), out=p.data)   # θ ← θ - Δ, in place
        self._last_params = params

    def undo_last_step(self):
        """Put back the parameter values from before the last ``step``, bit for bit;
        False if there is none (no step yet, or already undone).

        (Optimizer state such as momentum keeps that step's update.)
        """
        undone = bool(self._last_params)
        for p, state in zip(self._last_params, self.state):
            np.copyto(p.data, state["previous"])
        self._last_params = []
        return undone

    def _clip_scale(self, params):
        norm = np.sqrt(sum(float(np.vdot(p.grad, p.grad)) for p in params))
        return min(1.0, self.clip_norm / (norm + 1e-6))

    def penalty(self, params):
        """The L2 term ``(λ/2) Σ ‖θ‖²`` this optimizer's weight decay adds to the cost."""
        if self.weight_decay == 0:
            return 0.0
        return 0.5 * self.weight_decay * sum(float(np.vdot(p.data, p.data))
                                             for p in params if p.decay or self.decay_all)

    def _delta(self, p, g, state):
        raise NotImplementedError

    def __repr__(self):
        return f"{type(self).__name__}(lr={self.lr})"


class SGD(Optimizer):
    """Stochastic gradient descent, with optional momentum and Nesterov.

    As ``torch.optim.SGD``::

        g ← g + λθ
        b ← μ b + (1 - τ) g        (b = g at the first step; μ = momentum, τ = dampening)
        g ← g + μ b  if nesterov, else g ← b      (only when μ ≠ 0)
        θ ← θ - γ g
    """

    def __init__(self, lr=0.01, momentum=0.0, dampening=0.0, nesterov=False, weight_decay=0.0,
                 clip_norm=None, decay_all=False):
        super().__init__(lr, weight_decay, clip_norm, decay_all)
        if nesterov and (momentum <= 0 or dampening != 0):
            raise ValueError("Nesterov momentum requires momentum > 0 and dampening = 0")
        self.momentum, self.dampening, self.nesterov = float(momentum), float(dampening), nesterov

    def _delta(self, p, g, state):
        if self.momentum:
            b = state.get("momentum_buffer")
            b = g.copy() if b is None else self.momentum * b + (1 - self.dampening) * g
            state["momentum_buffer"] = b
            g = g + self.momentum * b if self.nesterov else b
            return self.lr * g
        return np.multiply(g, self.lr, out=p.data)   # Δ = γ g, in the scratch p.data (no new array)


class Adam(Optimizer):
    """Adam (Kingma & Ba 2015), as ``torch.optim.Adam``::

        g ← g + λθ
        m ← β₁ m + (1 - β₁) g
        v ← β₂ v + (1 - β₂) g²
        θ ← θ - γ (m / (1 - β₁ᵗ)) / (sqrt(v / (1 - β₂ᵗ)) + ε)
    """

    def __init__(self, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0,
                 clip_norm=None, decay_all=False):
        super().__init__(lr, weight_decay, clip_norm, decay_all)
        self.betas, self.eps = (float(betas[0]), float(betas[1])), float(eps)

    def _adam_delta(self, g, state, buf):
        """Δ = γ m̂ / (sqrt(v̂) + ε) computed in ``buf`` (the scratch ``p.data``); updates the moments."""
        # The update is memory-bound (a pass over every parameter per NumPy
        # call), so it runs in place in preallocated buffers with as few passes
        # as the algebra allows. The moments are stored rescaled,
        # m̃ = m / (1 - β₁) and ṽ = v / (1 - β₂), which turns their updates into
        #   m̃ ← β₁ m̃ + g,   ṽ ← β₂ ṽ + g²
        # (one pass fewer each), and every constant folds into two scalars:
        #   γ m̂ / (sqrt(v̂) + ε) = c · m̃ / (sqrt(ṽ) + ε / k),
        #   k = sqrt((1 - β₂) / (1 - β₂ᵗ)),  c = γ (1 - β₁) / ((1 - β₁ᵗ) k)
        # The scratch is p.data (θ is in "previous"), not an array of Adam's own:
        # one array fewer to stream through the caches (1.12x -> 1.00-1.03x the old
        # step on mlp800, see COPY_FOR_UNDO).
        b1, b2 = self.betas
        if "m_scaled" not in state:
            state["m_scaled"], state["v_scaled"] = np.zeros_like(g), np.zeros_like(g)
        m, v = state["m_scaled"], state["v_scaled"]
        m *= b1
        m += g
        v *= b2
        np.multiply(g, g, out=buf)
        v += buf
        k = np.sqrt((1 - b2) / (1 - b2 ** self.t))
        np.sqrt(v, out=buf)
        buf += self.eps / k
        np.divide(m, buf, out=buf)
        buf *= self.lr * (1 - b1) / ((1 - b1 ** self.t) * k)
        return buf

    def moments(self, index):
        """PyTorch's ``exp_avg`` and ``exp_avg_sq`` of parameter ``index`` (un-rescaled)."""
        state = self.state[index]
        b1, b2 = self.betas
        return (1 - b1) * state["m_scaled"], (1 - b2) * state["v_scaled"]

    def _delta(self, p, g, state):
        return self._adam_delta(g, state, p.data)


class AdamW(Adam):
    """Adam with decoupled weight decay (Loshchilov & Hutter 2019), as ``torch.optim.AdamW``::

        θ ← θ - γλθ                (decay first, not through the gradient)
        then the Adam step on the plain gradient g

    Default ``weight_decay=0.01`` as in PyTorch.
    """

    coupled_decay = False

    def __init__(self, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.01,
                 clip_norm=None, decay_all=False):
        super().__init__(lr, betas, eps, weight_decay, clip_norm, decay_all)

    def _delta(self, p, g, state):
        delta = self._adam_delta(g, state, p.data)
        if self._decays(p):
            delta += (self.lr * self.weight_decay) * state["previous"]   # γλθ, outside the adaptive scaling
        return delta


class RMSprop(Optimizer):
    """RMSprop (Hinton 2012), as ``torch.optim.RMSprop``::

        g ← g + λθ
        v ← α v + (1 - α) g²
        ṽ ← v - ḡ²  with ḡ ← α ḡ + (1 - α) g   if centered, else ṽ = v
        b ← μ b + g / (sqrt(ṽ) + ε);  θ ← θ - γ b     if momentum μ > 0
        θ ← θ - γ g / (sqrt(ṽ) + ε)                   otherwise
    """

    def __init__(self, lr=1e-2, alpha=0.99, eps=1e-8, weight_decay=0.0, momentum=0.0,
                 centered=False, clip_norm=None, decay_all=False):
        super().__init__(lr, weight_decay, clip_norm, decay_all)
        self.alpha, self.eps, self.momentum, self.centered = float(alpha), float(eps), float(momentum), centered

    def _delta(self, p, g, state):
        a = self.alpha
        if "square_avg" not in state:
            state["square_avg"] = np.zeros_like(g)
        v = state["square_avg"]
        v *= a
        v += (1 - a) * (g * g)
        if self.centered:
            gbar = state.setdefault("grad_avg", np.zeros_like(g))
            gbar *= a
            gbar += (1 - a) * g
            denom = np.sqrt(v - gbar * gbar)
        else:
            denom = np.sqrt(v)
        denom += self.eps
        if self.momentum > 0:
            b = state.setdefault("momentum_buffer", np.zeros_like(g))
            b *= self.momentum
            b += g / denom
            return self.lr * b
        return self.lr * g / denom


OPTIMIZERS = {"sgd": SGD, "adam": Adam, "adamw": AdamW, "rmsprop": RMSprop}


def get_optimizer(optimizer):
    """An optimizer instance from an instance or a name (with default hyperparameters)."""
    if isinstance(optimizer, Optimizer):
        return optimizer
    if isinstance(optimizer, str) and optimizer.lower() in OPTIMIZERS:
        return OPTIMIZERS[optimizer.lower()]()
    raise ValueError(f"optimizer must be an Optimizer or one of {sorted(OPTIMIZERS)}, got {optimizer!r}")
