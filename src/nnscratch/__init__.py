"""nnscratch: a neural-network library written from scratch on NumPy.

Every backward pass is written by hand and checked against finite differences.
``from nnscratch import *`` gives the names below, as the seed's
``from NeuralNet import *`` did.
"""
from .costs import (BinaryCrossEntropy, CrossEntropy, CrossEntropyLogits, Quadratic, cross_entropy_cost,
                    cross_entropy_cost_prime_SM, quadratic_cost, quadratic_cost_prime)
from .data import gen_clusters, get_mnist, load_digit_image, load_mnist, make_clusters
from . import augment, autodiff, generation
from .autodiff.bridge import AutodiffLayer
from .callbacks import Callback, CSVLogger, EarlyStopping, ModelCheckpoint
from .layers import (GELU, GRU, LSTM, RNN, AvgPool2D, BatchNorm, Conv2D, Dropout, Embedding, Flatten,
                     FullyConnected, LayerNorm, LeakyReLU, MaxPool2D, MultiHeadAttention, PositionalEmbedding, ReLU,
                     Residual, Sequential, Sigmoid, Softmax, Tanh)
from .network import Network
from .optimizers import SGD, Adam, AdamW, RMSprop
from .persistence import UnsafePickleError
from .schedules import CosineAnnealingLR, ExponentialLR, StepLR
from .training import History, TrainingDiverged, TrainingRun

__version__ = "0.1.0"

__all__ = [
    "Network",
    "quadratic_cost", "quadratic_cost_prime", "cross_entropy_cost", "cross_entropy_cost_prime_SM",
    "Quadratic", "CrossEntropy", "BinaryCrossEntropy", "CrossEntropyLogits",
    "SGD", "Adam", "AdamW", "RMSprop",
    "load_mnist", "get_mnist", "gen_clusters", "make_clusters", "load_digit_image",
    "FullyConnected", "Sigmoid", "Tanh", "ReLU", "LeakyReLU", "GELU", "Softmax", "Dropout", "BatchNorm",
    "LayerNorm", "Conv2D", "MaxPool2D", "AvgPool2D", "Flatten", "RNN", "LSTM", "GRU", "Embedding",
    "Sequential", "Residual", "MultiHeadAttention", "PositionalEmbedding",
    "Callback", "EarlyStopping", "ModelCheckpoint", "CSVLogger", "StepLR", "ExponentialLR", "CosineAnnealingLR",
    "History", "TrainingRun", "TrainingDiverged", "UnsafePickleError", "autodiff", "AutodiffLayer", "generation",
]
