"""Sampling text from a causal transformer, with or without a key/value cache.

Without a cache, each new token runs the whole context through the network
again: T positions through every block, O(T²) attention work per token. With
one (``kv_cache=True``), every attention layer keeps the keys and values of
the positions it has seen (``MultiHeadAttention.start_kv_cache``), so a new
token is one position through the network, attending to the T cached ones:
O(T) per token. Both give the same logits up to float rounding, and so (for
the same generator) the same characters.

The context is at most the positional table's ``max_len`` positions. When it
is full, both ways drop its older half and carry on from the newer half (the
cached way rebuilds its cache from those positions), so they see exactly the
same context at every step.
"""
import numpy as np

from .layers.positional import PositionalEmbedding


def pick_token(logits, temperature=1.0, top_k=None, rng=None):
    """Draw a token id from ``softmax(logits / temperature)``, kept to the ``top_k`` largest.

    A temperature below 1 sharpens the distribution, above 1 flattens it;
    ``top_k`` zeroes every probability but the k largest. One uniform draw
    from ``rng`` per call, read through the cumulative distribution.
    """
    if not temperature > 0:
        raise ValueError(f"temperature must be positive, got {temperature!r}")
    z = np.asarray(logits, dtype=np.float64) / temperature
    if top_k is not None:
        if int(top_k) != top_k or top_k < 1:
            raise ValueError(f"top_k must be a positive integer or None, got {top_k!r}")
        if top_k < len(z):
            kth = np.partition(z, -int(top_k))[-int(top_k)]
            z = np.where(z >= kth, z, -np.inf)
    p = np.exp(z - z.max())
    cumulative = np.cumsum(p)
    rng = np.random.default_rng(0) if rng is None else rng
    return int(min(np.searchsorted(cumulative, rng.random() * cumulative[-1], side="right"), len(p) - 1))


def context_length(net):
    """The longest sequence ``net`` reads: its positional table's ``max_len``."""
    tables = [leaf for _, leaf in net.named_layers() if isinstance(leaf, PositionalEmbedding)]
    if not tables:
        raise ValueError("generate needs a network with a positional embedding (a transformer language model)")
    return tables[0].max_len


class KeyValueCache:
    """``with KeyValueCache(net):`` every layer of ``net`` that can keep a cache keeps one,
    and forgets it on leaving (also when an error interrupts)."""

    def __init__(self, net):
        self.layers = [leaf for _, leaf in net.named_layers() if hasattr(leaf, "start_kv_cache")]

    def __enter__(self):
        for layer in self.layers:
            layer.start_kv_cache()
        return self

    def restart(self):
        self.__exit__()
        self.__enter__()

    def __exit__(self, *exc):
        for layer in self.layers:
            layer.stop_kv_cache()


def generate(net, prime_ids, length, temperature=1.0, top_k=None, rng=None, kv_cache=True):
    """``length`` new token ids after ``prime_ids``, each drawn with ``pick_token``.

    Parameters
    ----------
    net : Network
        A causal language model: token ids (N, T) -> logits (N, T, V).
    prime_ids : sequence of int
        At least one token to start from.
    length : int
        How many tokens to generate.
    temperature, top_k : see ``pick_token``.
    rng : numpy Generator, optional (default: seeded with 0)
    kv_cache : bool
        Reuse the keys and values of earlier positions (O(T) per token), or
        run the whole context again for each token (O(T²)).

    Returns
    -------
    list of int, the generated ids (without the prime)
    """
    tokens = [int(t) for t in prime_ids]
    primed = len(tokens)
    if not tokens:
        raise ValueError("the prime must hold at least one token")
    if int(length) != length or length < 0:
        raise ValueError(f"length must be a non-negative integer, got {length!r}")
    rng = np.random.default_rng(0) if rng is None else rng
    context = context_length(net)
    start = max(0, len(tokens) - context)               # the context is tokens[start:]

    def run(ids):
        return net.forward(np.array([ids]))[0, -1]      # the logits for the next token (V,)

    cache = KeyValueCache(net) if kv_cache else None
    if cache is not None:
        cache.__enter__()
    try:
        logits = run(tokens[start:])
        for _ in range(int(length)):
            tokens.append(pick_token(logits, temperature, top_k, rng))
            if len(tokens) - start > context:           # full: keep the newer half
                start = len(tokens) - max(1, context // 2)
                if cache is not None:
                    cache.restart()
                    logits = run(tokens[start:])
                    continue
            logits = run(tokens[-1:]) if cache is not None else run(tokens[start:])
    finally:
        if cache is not None:
            cache.__exit__()
    return tokens[primed:]


def sample_text(net, vocabulary, prime, length, temperature=1.0, top_k=None, rng=None, kv_cache=True):
    """``prime`` and ``length`` characters generated after it (see ``generate``)."""
    if not prime:
        raise ValueError("the prime must hold at least one character")
    ids = generate(net, vocabulary.encode(prime), length, temperature, top_k, rng, kv_cache)
    return prime + vocabulary.decode(ids)
