"""Layers, one module per family. Every layer follows the contract in ``base.Layer``."""
from .attention import MultiHeadAttention
from .activations import GELU, LeakyReLU, ReLU, Sigmoid, Softmax, Tanh
from .base import Layer, Parameter
from .blocks import Residual, Sequential
from .conv import Conv2D
from .dense import FullyConnected
from .dropout import Dropout
from .layernorm import LayerNorm
from .normalization import BatchNorm
from .positional import PositionalEmbedding
from .pooling import AvgPool2D, Flatten, MaxPool2D
from .embedding import Embedding
from .gru import GRU
from .lstm import LSTM
from .recurrent import RNN

__all__ = ["Layer", "Parameter", "FullyConnected", "Sigmoid", "Tanh", "ReLU", "LeakyReLU", "GELU", "Softmax",
           "Dropout", "BatchNorm", "LayerNorm", "Conv2D", "MaxPool2D", "AvgPool2D", "Flatten", "RNN", "LSTM",
           "GRU", "Embedding", "Sequential", "Residual", "MultiHeadAttention", "PositionalEmbedding"]
