"""Learning-rate schedules, applied at the start of every epoch as callbacks.

Each sets the run's ``run.optimizer.lr`` from the initial rate ``γ₀`` (the optimizer's
``lr`` when training starts) and the epoch index ``e`` (0 for the first
epoch), with PyTorch's documented formulas (``torch.optim.lr_scheduler``
stepped once per epoch).
"""
import math

from .callbacks import Callback


class LearningRateSchedule(Callback):
    """Base class: subclasses define ``rate(base_lr, epoch_index)``."""

    def on_train_begin(self, run):
        self.base_lr = run.optimizer.lr

    def on_epoch_begin(self, run):
        run.optimizer.lr = self.rate(self.base_lr, run.epoch - 1)

    def rate(self, base_lr, e):
        raise NotImplementedError


class StepLR(LearningRateSchedule):
    """``γ = γ₀ · gamma^⌊e / step_size⌋``: multiply by ``gamma`` every ``step_size`` epochs."""

    def __init__(self, step_size, gamma=0.1):
        if int(step_size) != step_size or step_size < 1:
            raise ValueError(f"step_size must be a positive integer, got {step_size!r}")
        self.step_size, self.gamma = int(step_size), float(gamma)

    def rate(self, base_lr, e):
        return base_lr * self.gamma ** (e // self.step_size)


class ExponentialLR(LearningRateSchedule):
    """``γ = γ₀ · gamma^e``."""

    def __init__(self, gamma):
        if not gamma > 0:
            raise ValueError(f"gamma must be positive, got {gamma!r}")
        self.gamma = float(gamma)

    def rate(self, base_lr, e):
        return base_lr * self.gamma ** e


class CosineAnnealingLR(LearningRateSchedule):
    """``γ = η_min + (γ₀ - η_min)(1 + cos(π e / T_max)) / 2``: from γ₀ down to
    ``eta_min`` over ``T_max`` epochs along half a cosine."""

    def __init__(self, T_max, eta_min=0.0):
        if int(T_max) != T_max or T_max < 1:
            raise ValueError(f"T_max must be a positive integer, got {T_max!r}")
        self.T_max, self.eta_min = int(T_max), float(eta_min)

    def rate(self, base_lr, e):
        return self.eta_min + (base_lr - self.eta_min) * (1 + math.cos(math.pi * e / self.T_max)) / 2


def warmup_cosine(step, progress, base_lr, warmup_steps, min_lr=0.0):
    """The learning rate of a transformer's usual schedule, for step ``step`` (from 0)::

        γ = γ₀ (step + 1) / warmup_steps                          while step < warmup_steps
        γ = η_min + (γ₀ - η_min)(1 + cos(π · progress)) / 2      after

    ``progress`` in [0, 1] is how much of the run is done (``step / steps``,
    or training seconds over a time budget), so the cosine reaches ``min_lr``
    when the run ends, however its length is measured.
    """
    if step < warmup_steps:
        return base_lr * (step + 1) / warmup_steps
    return min_lr + (base_lr - min_lr) * (1 + math.cos(math.pi * min(max(progress, 0.0), 1.0))) / 2


class WarmupCosineLR(Callback):
    """``warmup_cosine`` stepped after every batch of ``fit``: a linear warm-up over
    ``warmup_steps`` batches, then half a cosine to ``eta_min`` at the last batch of the last epoch."""

    def __init__(self, warmup_steps, eta_min=0.0):
        if int(warmup_steps) != warmup_steps or warmup_steps < 0:
            raise ValueError(f"warmup_steps must be a non-negative integer, got {warmup_steps!r}")
        self.warmup_steps, self.eta_min = int(warmup_steps), float(eta_min)

    def _set(self, run):
        total = run.epochs * run.batches
        run.optimizer.lr = warmup_cosine(self.step, self.step / max(total - 1, 1), self.base_lr,
                                         self.warmup_steps, self.eta_min)

    def on_train_begin(self, run):
        self.base_lr, self.step = run.optimizer.lr, 0
        self._set(run)

    def on_batch_end(self, run):
        self.step += 1
        self._set(run)
