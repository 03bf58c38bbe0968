"""``to_torch_state_dict`` / ``from_torch_state_dict``: the keys and shapes of the equivalent torch.nn model.

The expected keys and shapes are written here from PyTorch's documentation
(torch.nn module pages, "Variables" sections), not from the library:

- ``nn.Linear(in, out)``: weight (out, in), bias (out)
- ``nn.Conv2d(C, F, (kh, kw))``: weight (F, C, kh, kw), bias (F)
- ``nn.BatchNorm1d/2d(C)``: weight, bias, running_mean, running_var (C), num_batches_tracked () int64
- ``nn.LayerNorm(E)``: weight, bias (E);  ``nn.Embedding(V, E)``: weight (V, E)
- ``nn.RNN/GRU/LSTM(D, H)``, one layer: weight_ih_l0 (G·H, D), weight_hh_l0 (G·H, H), bias_ih_l0 and
  bias_hh_l0 (G·H), with G = 1 (RNN), 3 (GRU: r, z, n), 4 (LSTM: i, f, g, o)
- ``nn.MultiheadAttention(E, heads)``: in_proj_weight (3E, E), in_proj_bias (3E), out_proj.weight (E, E),
  out_proj.bias (E)
- ``nn.TransformerEncoderLayer(E, heads, F)``: self_attn.* as above, linear1 (F, E), linear2 (E, F),
  norm1 and norm2 (E)
- ``nn.Sequential``: a child's keys are prefixed by its index, and modules without weights (ReLU,
  Dropout, Flatten, MaxPool2d, Softmax) take an index too.
"""
import numpy as np
import pytest

from nnscratch import Network
from nnscratch.layers import FullyConnected, ReLU, Residual

import model_zoo


def shapes(state):
    return {key: tuple(np.shape(value)) for key, value in state.items()}


def test_the_reference_cnn_has_the_keys_of_its_sequential():
    # Sequential(Conv2d(1,32,3), ReLU, MaxPool2d, Conv2d(32,64,3), ReLU, MaxPool2d, Flatten,
    #            Linear(1600,128), ReLU, Dropout, Linear(128,10), Softmax)
    expected = {"0.weight": (32, 1, 3, 3), "0.bias": (32,), "3.weight": (64, 32, 3, 3), "3.bias": (64,),
                "7.weight": (128, 1600), "7.bias": (128,), "10.weight": (10, 128), "10.bias": (10,)}
    assert shapes(model_zoo.build_cnn().to_torch_state_dict()) == expected


def test_batch_norm_brings_its_running_statistics_and_counter():
    # Sequential(Conv2d(1,32,3), BatchNorm2d(32), ReLU, MaxPool2d, Conv2d(32,64,3), BatchNorm2d(64), ReLU,
    #            Conv2d(64,64,3), BatchNorm2d(64), ReLU, MaxPool2d, Flatten, Linear(1024,256), BatchNorm1d(256),
    #            ReLU, Dropout, Linear(256,10), Softmax)
    net = model_zoo.build_cnn_aug()
    state = net.to_torch_state_dict()
    bn = {f"{i}.{name}": (c,) for i, c in ((1, 32), (5, 64), (8, 64), (13, 256))
          for name in ("weight", "bias", "running_mean", "running_var")}
    bn.update({f"{i}.num_batches_tracked": () for i in (1, 5, 8, 13)})
    expected = {"0.weight": (32, 1, 3, 3), "0.bias": (32,), "4.weight": (64, 32, 3, 3), "4.bias": (64,),
                "7.weight": (64, 64, 3, 3), "7.bias": (64,), "12.weight": (256, 1024), "12.bias": (256,),
                "16.weight": (10, 256), "16.bias": (10,), **bn}
    assert shapes(state) == expected
    assert state["1.num_batches_tracked"].dtype == np.int64
    net.fit(np.random.default_rng(0).random((6, 1, 28, 28)), np.arange(6), epochs=1, batch_size=3, verbose=0)
    state = net.to_torch_state_dict()
    assert int(state["5.num_batches_tracked"]) == 2
    np.testing.assert_array_equal(state["5.running_var"], net.layers[5].running_var)
    np.testing.assert_array_equal(state["13.weight"], net.layers[13].gamma.data)


@pytest.mark.parametrize("kind, gates", [("rnn", 1), ("gru", 3), ("lstm", 4)])
def test_recurrent_layers_have_the_names_of_nn_lstm_gru_rnn(kind, gates):
    net = model_zoo.build_sequence_classifier(kind, hidden=16, steps=5, features=7, classes=3)
    state = net.to_torch_state_dict()
    # Sequential(LSTM(7, 16, batch_first=True) [last step], Linear(16, 3), Softmax)
    assert shapes(state) == {"0.weight_ih_l0": (gates * 16, 7), "0.weight_hh_l0": (gates * 16, 16),
                             "0.bias_ih_l0": (gates * 16,), "0.bias_hh_l0": (gates * 16,),
                             "1.weight": (3, 16), "1.bias": (3,)}
    recurrent = net.layers[0]
    for ours, theirs in (("W_ih", "weight_ih_l0"), ("W_hh", "weight_hh_l0"), ("b_ih", "bias_ih_l0"),
                         ("b_hh", "bias_hh_l0")):
        np.testing.assert_array_equal(state[f"0.{theirs}"], getattr(recurrent, ours).data)


def test_the_char_gpt_has_embedding_positions_encoder_layers_norm_and_head():
    E, F, V = 16, 64, 11
    net = model_zoo.build_char_gpt(V, embed=E, heads=2, layers=2, context=9)
    block = {"self_attn.in_proj_weight": (3 * E, E), "self_attn.in_proj_bias": (3 * E,),
             "self_attn.out_proj.weight": (E, E), "self_attn.out_proj.bias": (E,),
             "linear1.weight": (F, E), "linear1.bias": (F,), "linear2.weight": (E, F), "linear2.bias": (E,),
             "norm1.weight": (E,), "norm1.bias": (E,), "norm2.weight": (E,), "norm2.bias": (E,)}
    expected = {"0.weight": (V, E), "1.weight": (9, E), "4.weight": (E,), "4.bias": (E,),
                "5.weight": (V, E), "5.bias": (V,)}
    expected.update({f"{i}.{key}": shape for i in (2, 3) for key, shape in block.items()})
    state = net.to_torch_state_dict()
    assert shapes(state) == expected
    np.testing.assert_array_equal(state["3.linear2.weight"], net.layers[3].layers[1].layers[3].W.data)
    np.testing.assert_array_equal(state["2.self_attn.in_proj_weight"], net.layers[2].layers[0].layers[1].W_qkv.data)


def test_an_attention_layer_alone_has_the_names_of_nn_multiheadattention():
    net = Network((5, 12))
    net.add_attention_layer(3)
    assert shapes(net.to_torch_state_dict()) == {"0.in_proj_weight": (36, 12), "0.in_proj_bias": (36,),
                                                 "0.out_proj.weight": (12, 12), "0.out_proj.bias": (12,)}


def test_other_blocks_nest_as_sequentials():
    net = Network(4)
    net.add(Residual(FullyConnected(4), ReLU(), FullyConnected(4)))
    net.add_fc_layer(2)
    assert shapes(net.to_torch_state_dict()) == {"0.0.weight": (4, 4), "0.0.bias": (4,), "0.2.weight": (4, 4),
                                                 "0.2.bias": (4,), "1.weight": (2, 4), "1.bias": (2,)}


class FakeTensor:
    """What the loader uses of a torch tensor: ``detach().cpu().numpy()`` (torch is not a test dependency)."""

    def __init__(self, array):
        self.array = array

    def detach(self):
        return self

    def cpu(self):
        return self

    def numpy(self):
        return self.array


def test_from_torch_state_dict_is_the_reverse_and_leaves_the_template_alone():
    like = model_zoo.build_cnn_aug(seed=1)
    rng = np.random.default_rng(2)
    state = {key: FakeTensor(np.abs(rng.standard_normal(np.shape(v))).astype(v.dtype) if v.dtype.kind == "f"
                             else np.array(7, dtype=np.int64))          # positive, as running variances are
             for key, v in like.to_torch_state_dict().items()}
    before = like.state_dict()
    net = Network.from_torch_state_dict(state, like)
    back = net.to_torch_state_dict()
    for key, tensor in state.items():
        np.testing.assert_array_equal(back[key], tensor.array, err_msg=key)
    assert net.layers[1].num_batches_tracked == 7
    for key, value in like.state_dict().items():
        np.testing.assert_array_equal(value, before[key])                  # the template is not changed
    X = rng.random((2, 1, 28, 28), dtype=np.float32)
    assert not np.allclose(net.predict_proba(X), like.predict_proba(X))


def test_a_state_dict_that_does_not_fit_is_refused_before_anything_is_copied():
    net = model_zoo.build_cnn()
    state = net.to_torch_state_dict()
    original = net.layers[0].W.data.copy()
    with pytest.raises(ValueError, match=r"missing keys \['10.bias'\]"):
        net.load_torch_state_dict({k: v for k, v in state.items() if k != "10.bias"})
    with pytest.raises(ValueError, match=r"unexpected keys \['11.weight'\]"):
        net.load_torch_state_dict(dict(state, **{"11.weight": np.zeros(3)}))
    wrong = dict(state, **{"0.weight": np.ones((32, 1, 3, 3)), "7.weight": np.zeros((128, 1599))})
    with pytest.raises(ValueError, match=r"7.weight \(fc1.W\): expected shape \(128, 1600\), got \(128, 1599\)"):
        net.load_torch_state_dict(wrong)
    np.testing.assert_array_equal(net.layers[0].W.data, original)
    with pytest.raises(TypeError, match="like must be a Network"):
        Network.from_torch_state_dict(state, "cnn")
