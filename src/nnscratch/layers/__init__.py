"""Layers, one module per family. Every layer follows the contract in ``base.Layer``."""
from .activations import LeakyReLU, ReLU, Sigmoid, Softmax, Tanh
from .base import Layer, Parameter
from .dense import FullyConnected
from .dropout import Dropout
from .normalization import BatchNorm

__all__ = ["Layer", "Parameter", "FullyConnected", "Sigmoid", "Tanh", "ReLU", "LeakyReLU", "Softmax",
           "Dropout", "BatchNorm"]
