"""Character-level text: a vocabulary, batches for truncated BPTT, bits per
character, and sampling with a temperature.

Truncated BPTT reads the corpus as ``streams`` parallel strands: strand ``i``
is the i-th contiguous slice of the text, and batch ``b`` holds the b-th
chunk of ``seq_len`` characters of every strand. A stateful recurrent layer
then starts batch ``b`` from the state where batch ``b - 1`` ended, so the
model sees one long text while gradients flow back only ``seq_len`` steps.
"""
import math

import numpy as np


class Vocabulary:
    """The characters of a text, sorted, and their ids."""

    def __init__(self, text):
        self.chars = sorted(set(text))
        self.index = {c: i for i, c in enumerate(self.chars)}

    def __len__(self):
        return len(self.chars)

    def encode(self, text):
        """Text -> int64 ids; an unknown character is a ValueError naming it."""
        try:
            return np.array([self.index[c] for c in text], dtype=np.int64)
        except KeyError as e:
            raise ValueError(f"character {e.args[0]!r} is not in the vocabulary") from None

    def decode(self, ids):
        return "".join(self.chars[int(i)] for i in ids)


def bptt_batches(ids, streams, seq_len):
    """Inputs and next-character targets for stateful training.

    Returns ``X, Y`` of shape (batches·streams, seq_len), ordered so that
    rows ``b·streams .. (b+1)·streams - 1`` are batch ``b`` (train with
    ``batch_size=streams, shuffle=False``) and row ``b·streams + i`` continues
    row ``(b-1)·streams + i`` in the text.
    """
    if int(streams) != streams or streams < 1 or int(seq_len) != seq_len or seq_len < 1:
        raise ValueError(f"streams and seq_len must be positive integers, got {streams!r}, {seq_len!r}")
    per_stream = (len(ids) - 1) // streams
    batches = per_stream // seq_len
    if batches < 1:
        raise ValueError(f"{len(ids)} characters are too few for {streams} streams of {seq_len}")
    usable = batches * seq_len
    starts = np.arange(streams) * per_stream
    offsets = starts[:, None] + np.arange(usable)                      # (streams, usable)
    X = ids[offsets].reshape(streams, batches, seq_len)                # (streams, batches, T)
    Y = ids[offsets + 1].reshape(streams, batches, seq_len)
    # batch-major rows: (batches, streams, T) -> (batches*streams, T)
    return X.transpose(1, 0, 2).reshape(-1, seq_len), Y.transpose(1, 0, 2).reshape(-1, seq_len)


def bits_per_character(net, ids, streams=32, seq_len=100):
    """Mean ``-log₂ p(next character)`` over ``ids``, reading it as stateful streams.

    The network's carried states are reset before and after.
    """
    X, Y = bptt_batches(ids, streams, seq_len)
    net.reset_state()
    total, count = 0.0, 0
    for b in range(0, len(X), streams):
        p = net.forward(X[b:b + streams])                               # (streams, T, V)
        picked = np.take_along_axis(p, Y[b:b + streams, :, None], axis=-1)
        total -= float(np.log(np.maximum(picked, 1e-30)).sum())
        count += picked.size
    net.reset_state()
    return total / count / math.log(2)


def sample(net, vocabulary, prime, length, temperature=1.0, rng=None):
    """Generate ``length`` characters after ``prime``.

    Each next character is drawn from ``softmax(log p / temperature)``: a
    temperature below 1 sharpens the distribution (safer, more repetitive
    text), above 1 flattens it. The recurrent layers must be stateful: the
    prime is read once, then one character at a time is fed back.
    """
    if temperature <= 0:
        raise ValueError(f"temperature must be positive, got {temperature!r}")
    if not prime:
        raise ValueError("the prime must hold at least one character")
    rng = np.random.default_rng(0) if rng is None else rng
    net.reset_state()
    p = net.forward(vocabulary.encode(prime)[None])[0, -1]             # (V,)
    out = []
    for _ in range(length):
        logits = np.log(np.maximum(p.astype(np.float64), 1e-30)) / temperature
        weights = np.exp(logits - logits.max())
        nxt = int(rng.choice(len(weights), p=weights / weights.sum()))
        out.append(nxt)
        p = net.forward(np.array([[nxt]]))[0, -1]
    net.reset_state()
    return prime + vocabulary.decode(out)
