"""Training a character-level GPT on the KJV Pentateuch: batches of random windows, AdamW with
warm-up and cosine decay, gradient clipping, and held-out bits per character.

Used by ``build_network.py chargpt`` and by benchmarks/bench_chargpt.py (the
same-wall-time race against the character LSTM), so both train the same way.
"""
import math
import os
import sys
import time

import numpy as np

from nnscratch import AdamW, text
from nnscratch.schedules import warmup_cosine
from nnscratch.training import History, _progress
from nnscratch.threads import splitter_for

ROOT = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
CORPUS = os.path.join(ROOT, "datasets", "kjv", "pentateuch.txt")
CONTEXT = 128          # characters a window holds: the positional table's length


def load_corpus(path=CORPUS):
    """The corpus' vocabulary and its ids split 90/10: ``(vocab, train_ids, held_out_ids)``.

    The held-out part is the last tenth (most of Deuteronomy), as for the character LSTM.
    """
    with open(path, encoding="utf-8") as f:
        corpus = f.read()
    vocab = text.Vocabulary(corpus)
    ids = vocab.encode(corpus)
    split = int(len(ids) * 0.9)
    return vocab, ids[:split], ids[split:]


def random_windows(ids, batch, length, rng):
    """``batch`` windows of ``length`` characters at random places and the characters that follow:
    inputs X (batch, length) and next-character targets Y (batch, length)."""
    starts = rng.integers(0, len(ids) - length, size=batch)
    offsets = starts[:, None] + np.arange(length)
    return ids[offsets], ids[offsets + 1]


def held_out_bits(net, ids, context, batch=64):
    """Mean ``-log₂ p(next character)`` over ``ids`` for a transformer with ``context`` positions.

    Windows of ``context`` characters overlap by half: the first window scores
    all its positions, every later one only its second half, so every character
    but the first ``context/2`` is predicted from at least ``context/2``
    characters before it (a window that does not overlap would predict its
    first character from nothing).
    """
    predictions = len(ids) - 1                             # every character but the first is predicted
    if predictions < 1:
        raise ValueError(f"held-out text of {len(ids)} characters has nothing to predict")
    context = min(context, predictions)
    stride = max(1, context // 2)
    starts = list(range(0, predictions - context + 1, stride))
    if starts[-1] != predictions - context:
        starts.append(predictions - context)                # the last window ends at the last character
    total, count, scored_until = 0.0, 0, 0
    for b in range(0, len(starts), batch):
        chunk = starts[b:b + batch]
        offsets = np.array(chunk)[:, None] + np.arange(context)
        logits = net.forward(ids[offsets]).astype(np.float64)              # (B, T, V)
        logits -= logits.max(axis=-1, keepdims=True)
        log_p = logits - np.log(np.exp(logits).sum(axis=-1, keepdims=True))
        picked = np.take_along_axis(log_p, ids[offsets + 1][..., None], axis=-1)[..., 0]  # (B, T)
        for row, start in enumerate(chunk):
            first = max(scored_until - start, 0)                            # positions not scored yet
            total -= picked[row, first:].sum()
            count += context - first
            scored_until = start + context
    return total / count / math.log(2)


def train(net, train_ids, held_ids, *, context, batch=32, lr=1e-3, steps=None, seconds=None, warmup=100,
          min_lr_ratio=0.1, weight_decay=0.1, clip_norm=1.0, evaluations=10, eval_chars=None, seed=0,
          verbose=1, on_evaluation=None):
    """Train ``net`` on random windows of ``train_ids`` for ``steps`` steps or ``seconds`` of training.

    The learning rate warms up linearly over ``warmup`` steps, then follows
    half a cosine from ``lr`` down to ``min_lr_ratio · lr`` over the run
    (measured in steps, or in training seconds when ``seconds`` is the
    budget: ``schedules.warmup_cosine``). AdamW (β = 0.9, 0.99; decoupled
    weight decay on the weight matrices only), gradients clipped to a global
    norm of ``clip_norm``. ``evaluations`` times, evenly spaced, the held-out
    bits per character are measured (on the first ``eval_chars`` held-out
    characters, all by default); the clock stops while they are.

    Returns a ``History``: one row per evaluation, with ``loss`` (mean
    training cost over the interval, in nats), ``time`` (training seconds in
    it), ``lr``, ``bits_per_character``, ``seconds`` (training seconds so far)
    and ``steps``.
    """
    if (steps is None) == (seconds is None):
        raise ValueError("give the length of training as steps or as seconds, one of the two")
    rng = np.random.default_rng(seed)
    optimizer = AdamW(lr=lr, betas=(0.9, 0.99), weight_decay=weight_decay, clip_norm=clip_norm)
    params = net.parameters()
    eye = np.eye(net.output_shape[-1], dtype=net.dtype)                    # one-hot targets by lookup
    held = held_ids if eval_chars is None else held_ids[:eval_chars]
    history = History()
    for key in ("bits_per_character", "seconds", "steps"):
        history[key] = []
    budget = steps if steps is not None else seconds
    bar = _progress(int(math.ceil(budget)), "chargpt", verbose)
    if bar is not None:
        bar.unit = "step" if steps is not None else "s"
    trained, step, losses, interval_start = 0.0, 0, [], 0.0
    next_eval = 1
    # fit's split over two threads where it pays (nnscratch/threads.py): the same gradients
    splitter = splitter_for(net, "auto", batch, positions=context)
    train_step = splitter.train_step if splitter else net.train_step
    try:
        while True:
            done = step / steps if steps is not None else trained / seconds
            if done >= 1:
                break
            optimizer.lr = warmup_cosine(step, done, lr, warmup, min_lr_ratio * lr)
            X, Y = random_windows(train_ids, batch, context, rng)
            started = time.perf_counter()
            losses.append(train_step(X, eye[Y]))
            if not math.isfinite(losses[-1]):
                raise RuntimeError(f"the cost became {losses[-1]} at step {step}: try a smaller learning rate")
            optimizer.step(params)
            spent = time.perf_counter() - started
            trained += spent
            step += 1
            if bar is not None:
                bar.update(1 if steps is not None else min(spent, max(0.0, budget - bar.n)))
                bar.set_postfix(loss=f"{losses[-1]:.3f}", refresh=False)
            done = step / steps if steps is not None else trained / seconds
            if done >= next_eval / evaluations or done >= 1:
                bits = held_out_bits(net, held, context)
                history["loss"].append(float(np.mean(losses)))
                history["time"].append(trained - interval_start)
                history["lr"].append(optimizer.lr)
                history["bits_per_character"].append(bits)
                history["seconds"].append(trained)
                history["steps"].append(step)
                losses, interval_start = [], trained
                next_eval = math.floor(done * evaluations) + 1
                if on_evaluation is not None:
                    on_evaluation(history)
    except KeyboardInterrupt:
        history.interrupted = True
        print("\ninterrupted: keeping the network as it is now", file=sys.stderr)
    finally:
        if bar is not None:
            bar.close()
        if splitter:
            splitter.close()
    return history


def attention_maps(net, ids):
    """The attention weights of every block for one sequence ``ids`` (T,): (blocks, H, T, T)."""
    from nnscratch import MultiHeadAttention
    net.forward(np.asarray(ids)[None])
    layers = [leaf for _, leaf in net.named_layers() if isinstance(leaf, MultiHeadAttention)]
    return np.stack([layer.attention_weights()[0] for layer in layers])


def describe_heads(weights):
    """One line per head of ``attention_maps``: how far back it looks on average (in characters,
    weighted by attention), and the share of its weight on the character itself and the one before."""
    L, H, T, _ = weights.shape
    distance = np.arange(T)[:, None] - np.arange(T)[None, :]                # i - j, (T, T)
    lines = []
    for l in range(L):
        for h in range(H):
            w = weights[l, h]
            lines.append(f"block {l + 1} head {h + 1}: looks back {float((w * distance).sum(1).mean()):.1f} "
                         f"characters on average; {float(np.trace(w)) / T:.0%} on itself, "
                         f"{float(np.trace(w, -1)) / (T - 1):.0%} on the previous character")
    return lines
