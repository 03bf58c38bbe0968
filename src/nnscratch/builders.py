"""``Network.add_*_layer``: one builder per layer kind, each ``self.add(Layer(...))``.

A mixin so that network.py keeps to what a network does with its layers;
each builder's docstring points at the layer class that documents the math.
"""
from .layers import (GELU, GRU, LSTM, RNN, AvgPool2D, BatchNorm, Conv2D, Dropout, Embedding, Flatten,
                     FullyConnected, LayerNorm, LeakyReLU, MaxPool2D, MultiHeadAttention, PositionalEmbedding,
                     ReLU, Sigmoid, Softmax, Tanh)
from .layers.base import shape_str
from .layers.transformer import transformer_block


class LayerBuilders:
    """The ``add_*`` methods of ``Network`` (which provides ``add`` and ``output_shape``)."""

    def add_fc_layer(self, units, init="auto"):
        """Fully connected layer with ``units`` outputs (see ``FullyConnected``)."""
        return self.add(FullyConnected(units, init=init))

    def add_sigmoid_layer(self, size=None):
        return self.add(Sigmoid(), size)

    def add_relu_layer(self, size=None):
        return self.add(ReLU(), size)

    def add_tanh_layer(self, size=None):
        return self.add(Tanh(), size)

    def add_leaky_relu_layer(self, size=None, negative_slope=0.01):
        return self.add(LeakyReLU(negative_slope), size)

    def add_gelu_layer(self, approximate="none"):
        """GELU ``x Φ(x)``; ``approximate="tanh"``: its tanh approximation (see ``GELU``), as PyTorch's ``nn.GELU``."""
        return self.add(GELU(approximate))

    def add_softmax_layer(self, size=None):
        return self.add(Softmax(), size)

    def add_dropout_layer(self, p=0.5):
        """Inverted dropout dropping each unit with probability ``p`` in training."""
        return self.add(Dropout(p))

    def add_batchnorm_layer(self, momentum=0.1, eps=1e-5):
        """Batch normalization over features (N, D) or channels (N, C, H, W)."""
        return self.add(BatchNorm(momentum, eps))

    def add_layernorm_layer(self, eps=1e-5):
        """Layer normalization over the last axis of (N, E) or (N, T, E) (see ``LayerNorm``)."""
        return self.add(LayerNorm(eps))

    def add_conv_layer(self, filters, kernel_size, stride=1, padding=0, init="auto", impl="fast"):
        """2-D convolution with ``filters`` output channels (see ``Conv2D``)."""
        return self.add(Conv2D(filters, kernel_size, stride, padding, init, impl))

    def add_maxpool_layer(self, size=2, stride=None, impl="fast"):
        """Max pooling over ``size`` windows (stride defaults to the size)."""
        return self.add(MaxPool2D(size, stride, impl))

    def add_avgpool_layer(self, size=2, stride=None, impl="fast"):
        """Average pooling over ``size`` windows (stride defaults to the size)."""
        return self.add(AvgPool2D(size, stride, impl))

    def add_rnn_layer(self, hidden, activation="tanh", return_sequences=False, stateful=False, impl="fast"):
        """Elman RNN over (N, T, D) (see ``RNN``; ``impl="naive"``: the step-by-step teaching version)."""
        return self.add(RNN(hidden, activation, return_sequences, stateful, impl))

    def add_lstm_layer(self, hidden, return_sequences=False, stateful=False, impl="fast"):
        """LSTM over (N, T, D) (see ``LSTM``; ``impl="naive"``: the step-by-step teaching version)."""
        return self.add(LSTM(hidden, return_sequences, stateful, impl))

    def add_gru_layer(self, hidden, return_sequences=False, stateful=False, impl="fast"):
        """GRU over (N, T, D) (see ``GRU``; ``impl="naive"``: the step-by-step teaching version)."""
        return self.add(GRU(hidden, return_sequences, stateful, impl))

    def add_embedding_layer(self, vocab_size, dim):
        """Token ids (N, T) to vectors (N, T, dim) (see ``Embedding``)."""
        return self.add(Embedding(vocab_size, dim))

    def add_flatten_layer(self):
        """(N, C, H, W) -> (N, C·H·W), in PyTorch's order."""
        return self.add(Flatten())

    def add_attention_layer(self, num_heads, causal=False, dropout=0.0, impl="fast"):
        """Multi-head self-attention over (N, T, E) (see ``MultiHeadAttention``; ``impl="naive"``: the loops)."""
        return self.add(MultiHeadAttention(num_heads, causal, dropout, impl))

    def add_positional_embedding_layer(self, max_len):
        """Add a learned (max_len, E) position table to (N, T, E) (see ``PositionalEmbedding``)."""
        return self.add(PositionalEmbedding(max_len))

    def add_transformer_block(self, num_heads, ff_dim=None, dropout=0.0, causal=True, approximate="none",
                              impl="fast"):
        """A pre-norm transformer block on (N, T, E), PyTorch's ``nn.TransformerEncoderLayer(norm_first=True,
        activation="gelu", batch_first=True)`` layout (see ``layers.transformer.transformer_block``);
        ``ff_dim`` defaults to 4E."""
        shape = self.output_shape
        if len(shape) != 2 or shape[-1] is None:
            raise ValueError(f"a transformer block needs a sequence (N, T, E) with a known E, the network "
                             f"gives {shape_str(shape)} here")
        return self.add(transformer_block(shape[-1], num_heads, ff_dim, dropout, causal, approximate, impl))
