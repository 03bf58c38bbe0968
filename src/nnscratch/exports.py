"""``Network``'s doors to other tools: PyTorch state dicts and ONNX files (a mixin, as builders.py).

The work is done in ``torch_names.py`` (names and layouts) and ``onnx_export.py``
(the graph); the safe file format is ``net.save("x.safetensors")`` (persistence.py).
"""


class WeightExports:
    """The ``to_torch_state_dict`` / ``from_torch_state_dict`` / ``export_onnx`` methods of ``Network``."""

    def to_torch_state_dict(self):
        """The weights as the ``state_dict()`` of the equivalent ``torch.nn`` model (see ``torch_names``).

        Returns
        -------
        dict of str -> ndarray
            ``"0.weight"``, ``"0.bias"``, ... for an ``nn.Sequential`` with one module per layer in
            order (activations included); ``torch.from_numpy`` turns the values into tensors.

        Examples
        --------
        >>> model.load_state_dict({k: torch.from_numpy(v) for k, v in net.to_torch_state_dict().items()})
        """
        from . import torch_names
        return torch_names.to_torch_state_dict(self)

    def load_torch_state_dict(self, state):
        """Copy a PyTorch ``state_dict`` (tensors or arrays) into this network in place, strictly: every key
        must be there and no other, each of its shape (see ``torch_names``). Returns self."""
        from . import torch_names
        return torch_names.load_torch_state_dict(self, state)

    @classmethod
    def from_torch_state_dict(cls, state, like):
        """A new network with the layers of ``like`` (a Network of the same architecture) and the weights of
        a PyTorch ``state_dict``: the reverse of ``to_torch_state_dict``. ``like`` is not changed."""
        from . import torch_names
        if not isinstance(like, cls):
            raise TypeError(f"like must be a Network with the architecture of the state dict, "
                            f"got {type(like).__name__}")
        return torch_names.from_torch_state_dict(state, like)

    def export_onnx(self, path, opset=17):
        """Write the network as an ONNX model computing ``predict_proba`` (MLPs and CNNs; see
        ``onnx_export``); needs the ``onnx`` package. Returns ``path``."""
        from . import onnx_export
        return onnx_export.export(self, path, opset)
