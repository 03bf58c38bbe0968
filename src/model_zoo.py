"""The example networks, built from the library's layers (used by build_network.py and benchmarks/)."""
from nnscratch import Network


def build_mlp800(seed=0, dropout=0.2):
    """784-800-800-10 ReLU MLP with dropout after each hidden layer (PyTorch's mlp800 reference)."""
    net = Network(784, cost="cross_entropy", seed=seed)
    for _ in range(2):
        net.add_fc_layer(800)
        net.add_relu_layer()
        if dropout:
            net.add_dropout_layer(dropout)
    net.add_fc_layer(10)
    net.add_softmax_layer()
    return net


def build_cnn(seed=0, impl="fast"):
    """The reference CNN: conv 32 3x3, ReLU, max-pool 2, conv 64 3x3, ReLU, max-pool 2,
    flatten, FC 128, ReLU, dropout 0.5, FC 10 (PyTorch's cnn reference)."""
    net = Network((1, 28, 28), cost="cross_entropy", seed=seed)
    net.add_conv_layer(32, 3, impl=impl)
    net.add_relu_layer()
    net.add_maxpool_layer(2, impl=impl)
    net.add_conv_layer(64, 3, impl=impl)
    net.add_relu_layer()
    net.add_maxpool_layer(2, impl=impl)
    net.add_flatten_layer()
    net.add_fc_layer(128)
    net.add_relu_layer()
    net.add_dropout_layer(0.5)
    net.add_fc_layer(10)
    net.add_softmax_layer()
    return net


def build_cnn_aug(seed=0, impl="fast"):
    """The augmented CNN: conv 32 3x3, BN, ReLU, max-pool 2, (conv 64 3x3, BN, ReLU) x 2, max-pool 2,
    flatten, FC 256, BN, ReLU, dropout 0.4, FC 10: the reference CNN with batch normalization after
    every product and a second 64-filter convolution, for training on augmented digits."""
    net = Network((1, 28, 28), cost="cross_entropy", seed=seed)
    net.add_conv_layer(32, 3, impl=impl)            # 28 -> 26
    net.add_batchnorm_layer()
    net.add_relu_layer()
    net.add_maxpool_layer(2, impl=impl)             # 26 -> 13
    for _ in range(2):                              # 13 -> 11 -> 9
        net.add_conv_layer(64, 3, impl=impl)
        net.add_batchnorm_layer()
        net.add_relu_layer()
    net.add_maxpool_layer(2, impl=impl)             # 9 -> 4
    net.add_flatten_layer()
    net.add_fc_layer(256)
    net.add_batchnorm_layer()
    net.add_relu_layer()
    net.add_dropout_layer(0.4)
    net.add_fc_layer(10)
    net.add_softmax_layer()
    return net


def build_sequence_classifier(kind="lstm", hidden=128, seed=0, steps=28, features=28, classes=10):
    """One recurrent layer read over the rows of an image, then FC to the classes:
    the sequential-MNIST model (PyTorch's lstm reference for ``kind="lstm"``)."""
    net = Network((steps, features), cost="cross_entropy", seed=seed)
    {"lstm": net.add_lstm_layer, "gru": net.add_gru_layer, "rnn": net.add_rnn_layer}[kind](hidden)
    net.add_fc_layer(classes)
    net.add_softmax_layer()
    return net


def build_char_lm(vocab_size, embed=48, hidden=256, seed=0):
    """Embedding -> stateful LSTM -> per-step FC -> softmax, over sequences of any length."""
    net = Network((None,), cost="cross_entropy", seed=seed)
    net.add_embedding_layer(vocab_size, embed)
    net.add_lstm_layer(hidden, return_sequences=True, stateful=True)
    net.add_fc_layer(vocab_size)
    net.add_softmax_layer()
    return net


def build_char_gpt(vocab_size, embed=128, heads=4, layers=4, context=128, dropout=0.0, seed=0, gelu="tanh"):
    """A character-level GPT: token embedding + learned positions -> ``layers`` pre-norm causal
    transformer blocks -> layer norm -> a linear head giving logits (N, T, V), trained with
    cross-entropy on logits. Both embedding tables start N(0, 0.02²), as GPT-2's."""
    net = Network((None,), cost="cross_entropy_logits", seed=seed)
    net.add_embedding_layer(vocab_size, embed).W.data *= 0.02
    net.add_positional_embedding_layer(context)
    for _ in range(layers):
        net.add_transformer_block(heads, dropout=dropout, causal=True, approximate=gelu)
    net.add_layernorm_layer()
    net.add_fc_layer(vocab_size)
    return net
