"""nnscratch.augment: the affine resampling against references written here, and fit's use of it."""
import numpy as np
import pytest

from nnscratch import SGD, Network
from nnscratch import augment as A


def images(n=3, c=2, h=5, w=6, seed=0):
    return np.random.default_rng(seed).random((n, c, h, w))


def maps(n, linear=((1, 0), (0, 1)), shift=(0, 0)):
    m = np.zeros((n, 2, 3))
    m[:, :, :2] = linear
    m[:, :, 2] = shift
    return m


def shifted(x, dx, dy):
    """x moved right by dx and down by dy pixels, zeros coming in: written with slices."""
    out = np.zeros_like(x)
    h, w = x.shape[-2:]
    if abs(dx) >= w or abs(dy) >= h:
        return out                                              # moved out of the picture
    out[..., max(dy, 0):h + min(dy, 0), max(dx, 0):w + min(dx, 0)] = \
        x[..., max(-dy, 0):h + min(-dy, 0), max(-dx, 0):w + min(-dx, 0)]
    return out


def test_the_identity_map_returns_the_images_exactly():
    x = images()
    np.testing.assert_array_equal(A.warp(x, maps(3)), x)


@pytest.mark.parametrize("dx, dy", [(1, 0), (0, 2), (-2, 1), (3, -3), (7, 0)])
def test_a_whole_pixel_shift_moves_the_pixels_and_brings_in_zeros(dx, dy):
    x = images()
    # read from p - shift: the content moves by +shift
    np.testing.assert_allclose(A.warp(x, maps(3, shift=(-dx, -dy))), shifted(x, dx, dy), atol=1e-15)


def test_a_quarter_turn_of_a_square_image_is_rot90():
    x = images(h=5, w=5)
    turned = A.warp(x, maps(3, linear=((0, 1), (-1, 0))))        # read (x, y) <- (y, -x)
    candidates = [np.rot90(x, k, axes=(2, 3)) for k in (1, 3)]
    assert any(np.allclose(turned, r, atol=1e-12) for r in candidates)


def test_half_a_pixel_reads_the_mean_of_two_neighbours():
    x = images()
    out = A.warp(x, maps(3, shift=(0.5, 0)))
    np.testing.assert_allclose(out[..., :-1], (x[..., :-1] + x[..., 1:]) / 2, atol=1e-12)
    np.testing.assert_allclose(out[..., -1], x[..., -1] / 2, atol=1e-12)   # half of it outside: 0


def test_random_shift_moves_each_image_by_its_drawn_whole_pixels():
    x = images(n=6)
    drawn = A.RandomShift(2).matrices(6, np.random.default_rng(5))[:, :, 2]
    out = A.RandomShift(2)(x, np.random.default_rng(5))
    assert np.abs(drawn).max() <= 2 and len({tuple(d) for d in drawn}) > 1
    for k in range(6):
        dx, dy = -drawn[k].astype(int)
        np.testing.assert_allclose(out[k], shifted(x[k], dx, dy), atol=1e-15)


def test_a_scale_of_two_reads_at_half_the_distance_from_the_centre():
    x = images(h=5, w=5)
    out = A.RandomScale(2.0, 2.0)(x, np.random.default_rng(0))
    np.testing.assert_allclose(out[..., 2, 2], x[..., 2, 2])                   # the centre stays
    np.testing.assert_allclose(out[..., 2, 4], (x[..., 2, 3] + x[..., 2, 3]) / 2)   # x = 2 + 2/2 = 3
    np.testing.assert_allclose(out[..., 2, 3], (x[..., 2, 2] + x[..., 2, 3]) / 2)   # x = 2.5


class Fixed(A.Transform):
    def __init__(self, m):
        self.m = m

    def matrices(self, n, rng):
        return np.repeat(self.m[None], n, axis=0)


def test_compose_applies_the_first_transform_first_in_one_resampling():
    x = images(h=7, w=7)
    turn = Fixed(maps(1, linear=((0, 1), (-1, 0)))[0])
    move = Fixed(maps(1, shift=(-1, 0))[0])                     # one pixel right
    rng = np.random.default_rng(0)
    one_then_other = move(turn(x, rng), rng)
    np.testing.assert_allclose(A.Compose([turn, move])(x, rng), one_then_other, atol=1e-12)
    assert not np.allclose(A.Compose([move, turn])(x, rng), one_then_other)


def test_augmentation_keeps_shape_and_dtype_and_one_seed_gives_one_result():
    x = np.random.default_rng(1).random((4, 1, 28, 28), dtype=np.float32)
    t = A.mnist_augmentation()
    a, b = t(x, np.random.default_rng(3)), t(x, np.random.default_rng(3))
    assert a.shape == x.shape and a.dtype == np.float32
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, t(x, np.random.default_rng(4)))
    flat = t(x[:, 0], np.random.default_rng(3))                              # (N, H, W) too
    np.testing.assert_array_equal(flat, a[:, 0])
    with pytest.raises(ValueError, match="float images"):
        t(np.zeros((2, 28 * 28)), np.random.default_rng(0))


def test_bad_parameters_are_refused():
    for make in (lambda: A.RandomShift(-1), lambda: A.RandomShift(1.5), lambda: A.RandomRotation(-3),
                 lambda: A.RandomScale(0, 1), lambda: A.RandomScale(1.2, 1.1), lambda: A.Compose([len])):
        with pytest.raises(ValueError):
            make()


def conv_net():
    net = Network((1, 6, 6), seed=0, dtype=np.float64)
    net.add_conv_layer(2, 3)
    net.add_relu_layer()
    net.add_flatten_layer()
    net.add_fc_layer(2)
    net.add_softmax_layer()
    return net


def test_fit_augments_every_training_batch_and_never_the_validation_data():
    rng = np.random.default_rng(2)
    X, y = rng.random((20, 1, 6, 6)), rng.integers(0, 2, 20)
    X_val, y_val = rng.random((7, 1, 6, 6)), rng.integers(0, 2, 7)
    seen = []

    def recording(batch, generator):
        seen.append(batch.shape)
        return A.RandomShift(1)(batch, generator)

    net = conv_net()
    history = net.fit(X, y, epochs=2, batch_size=8, optimizer=SGD(lr=0.1), verbose=0,
                      validation_data=(X_val, y_val), augment=recording)
    assert seen == [(8, 1, 6, 6), (8, 1, 6, 6), (4, 1, 6, 6)] * 2            # training batches only
    assert history["val_loss"][-1] == pytest.approx(net.evaluate(X_val, y_val)["loss"], rel=1e-12)
    plain = conv_net().fit(X, y, epochs=2, batch_size=8, optimizer=SGD(lr=0.1), verbose=0)
    assert plain["loss"] != history["loss"]
    with pytest.raises(ValueError, match="augment must be a function"):
        conv_net().fit(X, y, verbose=0, augment="shift")
