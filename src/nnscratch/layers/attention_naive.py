"""Multi-head self-attention as its equations read: one sample, one head, one query at a time.

The teaching twin of attention.py: ``MultiHeadAttention(H, impl="naive")``
(or ``net.add_attention_layer(H, impl="naive")``) runs these two functions.
They compute the same numbers as the batched default (tests/test_attention.py
checks outputs and every gradient agree to about 1e-12 in float64), written
with loops over heads and positions, every sample of the batch at once (each
line holds one row per sample, ``n`` in the einsum strings):

- for each head h and query position i: the scores ``s_j = q_i · k_j / √d``
  over the keys j it may see (all of them, or j ≤ i when causal), the weights
  ``p = softmax(s)``, the output ``o_i = Σ_j p̃_j v_j``;
- the parameters as they are stored (PyTorch's layout): ``W_qkv`` (3E, E)
  stacks the query, key and value projections, head h owns features
  h·d .. (h+1)·d - 1 of each, ``W_out`` (E, E);
- a causal mask is a shorter loop (j ≤ i), not a -inf: the weights of the
  keys a query may not see are never computed, so they are exactly zero.

Backward repeats, above each group of lines, the forward line it
differentiates (llm.c's style), so the equations can be ticked off reading
upwards.
"""
import numpy as np


def forward(x, weights, num_heads, causal, drop=None):
    """y = attention(x) for x (N, T, E); ``drop`` (N, H, T, T) is m / (1 - p) or None.

    Returns ``y`` (N, T, E) and the cache the backward needs.
    """
    W_qkv, b_qkv, W_out, b_out = weights
    N, T, E = x.shape
    d = E // num_heads
    qkv = x @ W_qkv.T + b_qkv                                  # (N, T, 3E): [q | k | v] per position
    q, k, v = qkv[..., :E], qkv[..., E:2 * E], qkv[..., 2 * E:]
    P = np.zeros((N, num_heads, T, T), dtype=x.dtype)        # weights; masked entries stay 0
    o = np.zeros((N, T, E), dtype=x.dtype)                   # heads' outputs side by side
    for h in range(num_heads):
        f = slice(h * d, (h + 1) * d)                        # head h's features
        for i in range(T):
            seen = i + 1 if causal else T                    # the keys query i may look at: j < seen
            q_i, keys, values = q[:, i, f], k[:, :seen, f], v[:, :seen, f]       # (N, d), (N, seen, d) x 2
            s = np.einsum("nd,njd->nj", q_i, keys) / np.sqrt(d)                 # s_j = q_i · k_j / √d
            p = np.exp(s - s.max(axis=1, keepdims=True))
            p /= p.sum(axis=1, keepdims=True)                                    # softmax over the keys j
            P[:, h, i, :seen] = p
            p_kept = p if drop is None else p * drop[:, h, i, :seen]             # p̃_j = p_j m_j / (1 - p)
            o[:, i, f] = np.einsum("nj,njd->nd", p_kept, values)                 # o_i = Σ_j p̃_j v_j
    y = o @ W_out.T + b_out
    return y, {"x": x, "q": q, "k": k, "v": v, "P": P, "drop": drop, "o": o, "causal": causal}


def backward(dy, cache, weights, num_heads, need_dx=True):
    """Gradients from dy (N, T, E): returns ``dx`` (or None) and ``[dW_qkv, db_qkv, dW_out, db_out]``."""
    W_qkv, b_qkv, W_out, b_out = weights
    x, q, k, v, P, drop, o = (cache[key] for key in ("x", "q", "k", "v", "P", "drop", "o"))
    N, T, E = x.shape
    d = E // num_heads
    # y = o W_outᵀ + b_out
    dW_out = np.einsum("nte,ntf->ef", dy, o)
    db_out = dy.sum(axis=(0, 1))
    do = dy @ W_out
    dq, dk, dv = np.zeros_like(q), np.zeros_like(k), np.zeros_like(v)
    for h in range(num_heads):
        f = slice(h * d, (h + 1) * d)
        for i in range(T):
            seen = i + 1 if cache["causal"] else T
            p = P[:, h, i, :seen]                                                # (N, seen)
            m = np.ones_like(p) if drop is None else drop[:, h, i, :seen]       # m_j / (1 - p)
            # o_i = Σ_j p̃_j v_j,  p̃_j = p_j m_j / (1 - p)
            dp = np.einsum("nd,njd->nj", do[:, i, f], v[:, :seen, f]) * m       # dp_j = (do_i · v_j) m_j / (1 - p)
            dv[:, :seen, f] += np.einsum("nj,nd->njd", p * m, do[:, i, f])      # dv_j += p̃_j do_i
            # p = softmax(s):  ds_j = p_j (dp_j - Σ_l p_l dp_l)
            ds = p * (dp - (p * dp).sum(axis=1, keepdims=True))
            # s_j = q_i · k_j / √d
            dq[:, i, f] = np.einsum("nj,njd->nd", ds, k[:, :seen, f]) / np.sqrt(d)
            dk[:, :seen, f] += np.einsum("nj,nd->njd", ds, q[:, i, f]) / np.sqrt(d)
    # qkv = x W_qkvᵀ + b_qkv
    dqkv = np.concatenate([dq, dk, dv], axis=-1)              # (N, T, 3E)
    dW_qkv = np.einsum("ntc,nte->ce", dqkv, x)
    db_qkv = dqkv.sum(axis=(0, 1))
    dx = dqkv @ W_qkv if need_dx else None
    return dx, [dW_qkv, db_qkv, dW_out, db_out]
