"""The pre-norm transformer block, made of blocks and layers the library already has."""
from .activations import GELU
from .attention import MultiHeadAttention
from .blocks import Residual, Sequential
from .dense import FullyConnected
from .dropout import Dropout
from .layernorm import LayerNorm

#: Where each parameter of PyTorch's ``nn.TransformerEncoderLayer(norm_first=True)`` lives in the
#: block (``<block name>.<key>``), so weights move between the two.
TORCH_ENCODER_LAYER_KEYS = {
    "norm1.weight": "block1.layernorm1.gamma", "norm1.bias": "block1.layernorm1.beta",
    "self_attn.in_proj_weight": "block1.attention1.W_qkv", "self_attn.in_proj_bias": "block1.attention1.b_qkv",
    "self_attn.out_proj.weight": "block1.attention1.W_out", "self_attn.out_proj.bias": "block1.attention1.b_out",
    "norm2.weight": "block2.layernorm1.gamma", "norm2.bias": "block2.layernorm1.beta",
    "linear1.weight": "block2.fc1.W", "linear1.bias": "block2.fc1.b",
    "linear2.weight": "block2.fc2.W", "linear2.bias": "block2.fc2.b",
}


def transformer_block(embed_dim, num_heads, ff_dim=None, dropout=0.0, causal=True, approximate="none",
                      impl="fast"):
    """A pre-norm transformer block on (N, T, E), E = ``embed_dim``::

        x = x + Dropout(Attention(LN₁(x)))                      block1: Residual
        x = x + Dropout(FC₂(Dropout(GELU(FC₁(LN₂(x))))))        block2: Residual, FC₁ E -> F, FC₂ F -> E

    the layout of PyTorch's ``nn.TransformerEncoderLayer(E, H, F, dropout,
    activation="gelu", batch_first=True, norm_first=True)``, whose parameters
    map one to one (``TORCH_ENCODER_LAYER_KEYS``). Backward is the blocks'
    own: each residual passes ``dy`` around and through its children.
    With ``dropout=0`` the Dropout layers are left out (they would pass
    everything through).

    Parameters
    ----------
    embed_dim : int
        E, the width of the residual stream.
    num_heads : int
        H, must divide E.
    ff_dim : int, optional
        F, the hidden width of the feed-forward part; 4E by default.
    dropout : float
        p for the attention weights and the three Dropout layers.
    causal : bool
        Mask the future in the attention (a language model's block).
    approximate : {"none", "tanh"}
        The GELU's form (see ``GELU``).
    impl : {"fast", "naive"}
        The attention's implementation.

    Returns
    -------
    Sequential
        ``Sequential(Residual(LN, Attention[, Dropout]), Residual(LN, FC, GELU[, Dropout], FC[, Dropout]))``
    """
    if int(embed_dim) != embed_dim or embed_dim < 1:
        raise ValueError(f"embed_dim must be a positive integer, got {embed_dim!r}")
    if embed_dim % num_heads:
        raise ValueError(f"transformer block: the embedding size E = {embed_dim} is not divisible by "
                         f"num_heads = {num_heads}")
    ff_dim = 4 * embed_dim if ff_dim is None else ff_dim

    def dropped(*layers):
        return [layer for layer in layers if not (isinstance(layer, Dropout) and dropout == 0)]

    attention = Residual(*dropped(LayerNorm(), MultiHeadAttention(num_heads, causal, dropout, impl),
                                  Dropout(dropout)))
    feed_forward = Residual(*dropped(LayerNorm(), FullyConnected(ff_dim), GELU(approximate), Dropout(dropout),
                                     FullyConnected(embed_dim), Dropout(dropout)))
    return Sequential(attention, feed_forward)
