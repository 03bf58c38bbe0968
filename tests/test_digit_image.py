"""Tests for nnscratch.digit_image (MNIST-style preprocessing of digit images)."""

import functools
import gzip
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw

from nnscratch.digit_image import load_digit_image, preprocess_digit_array

ROOT = Path(__file__).resolve().parents[1]
HANDWRITING = ROOT / "datasets" / "my_handwriting"
MNIST = ROOT / "datasets" / "mnist"
MNIST_PNGS = sorted(HANDWRITING.glob("mnist_test_*_label*.png"))
DRAWN_PNGS = sorted(HANDWRITING.glob("drawn_*.png"))


def draw_seven(size=(200, 200), mode="L", paper=255, ink=0):
    """A thick-pen '7' with a cross bar, off-centre so centring is tested."""
    img = Image.new(mode, size, paper)
    d = ImageDraw.Draw(img)
    w, h = size
    pts = [(0.2 * w, 0.15 * h), (0.6 * w, 0.15 * h), (0.35 * w, 0.85 * h)]
    d.line(pts, fill=ink, width=max(4, h // 14), joint="curve")
    d.line([(0.3 * w, 0.5 * h), (0.55 * w, 0.5 * h)], fill=ink, width=max(3, h // 20))
    return img


def save(img, tmp_path, name="digit.png"):
    path = tmp_path / name
    img.save(path)
    return path


def centre_of_mass(img28):
    """Independent centre of mass (row, col) of a 28x28 image."""
    rows, cols = np.indices(img28.shape)
    return (rows * img28).sum() / img28.sum(), (cols * img28).sum() / img28.sum()


def check_valid(vec):
    assert vec.shape == (784,)
    assert vec.dtype == np.float32
    assert np.all(np.isfinite(vec))
    assert vec.min() >= 0.0 and vec.max() <= 1.0
    assert vec.max() > 0.5


def test_output_shape_dtype_range(tmp_path):
    check_valid(load_digit_image(save(draw_seven(), tmp_path)))


def test_light_background_is_inverted(tmp_path):
    img28 = load_digit_image(save(draw_seven(), tmp_path)).reshape(28, 28)
    assert img28.max() == pytest.approx(1.0)  # the ink is bright ...
    corners = img28[[0, 0, -1, -1], [0, -1, 0, -1]]
    assert np.all(corners == 0)  # ... and the background is 0
    assert (img28 == 0).mean() > 0.5  # most of the canvas is background


def test_light_on_dark_equals_dark_on_light(tmp_path):
    dark_on_light = load_digit_image(save(draw_seven(paper=255, ink=0), tmp_path, "a.png"))
    light_on_dark = load_digit_image(save(draw_seven(paper=0, ink=255), tmp_path, "b.png"))
    np.testing.assert_allclose(light_on_dark, dark_on_light, atol=1e-6)


def test_paper_tone_is_removed():
    grey = np.asarray(draw_seven(paper=200, ink=60), dtype=np.uint8)
    white = np.asarray(draw_seven(paper=255, ink=0), dtype=np.uint8)
    np.testing.assert_allclose(preprocess_digit_array(grey),
                               preprocess_digit_array(white), atol=1e-6)


@pytest.mark.parametrize("size", [(200, 200), (300, 200), (90, 260), (40, 30)])
def test_centre_of_mass_is_centred(tmp_path, size):
    img28 = load_digit_image(save(draw_seven(size), tmp_path)).reshape(28, 28)
    cy, cx = centre_of_mass(img28)
    assert abs(cy - 14) <= 1 and abs(cx - 14) <= 1


@pytest.mark.parametrize("size", [(200, 200), (300, 200), (90, 260)])
def test_ink_fits_20_pixel_box(tmp_path, size):
    img28 = load_digit_image(save(draw_seven(size), tmp_path)).reshape(28, 28)
    rows = np.flatnonzero(img28.any(axis=1))
    cols = np.flatnonzero(img28.any(axis=0))
    height, width = rows[-1] - rows[0] + 1, cols[-1] - cols[0] + 1
    assert 19 <= max(height, width) <= 21


def test_large_image(tmp_path):
    check_valid(load_digit_image(save(draw_seven((300, 200)), tmp_path)))


def test_rgb_and_rgba_versions_agree(tmp_path):
    rgb = draw_seven(mode="RGB", paper=(255, 255, 255), ink=(0, 0, 0))
    rgba = draw_seven(mode="RGBA", paper=(0, 0, 0, 0), ink=(0, 0, 0, 255))
    v_rgb = load_digit_image(save(rgb, tmp_path, "rgb.png"))
    v_rgba = load_digit_image(save(rgba, tmp_path, "rgba.png"))
    np.testing.assert_allclose(v_rgba, v_rgb, atol=1e-3)
    # white strokes on a transparent canvas are ink too
    rgba_white = draw_seven(mode="RGBA", paper=(0, 0, 0, 0), ink=(255, 255, 255, 255))
    v_white = load_digit_image(save(rgba_white, tmp_path, "rgba_white.png"))
    np.testing.assert_allclose(v_white, v_rgb, atol=1e-3)


@pytest.mark.parametrize("mode", ["L", "LA", "P", "1", "RGB", "RGBA"])
def test_all_modes_agree(tmp_path, mode):
    reference = load_digit_image(save(draw_seven(), tmp_path, "ref.png"))
    other = load_digit_image(save(draw_seven().convert(mode), tmp_path, "other.png"))
    np.testing.assert_allclose(other, reference, atol=1e-3)


def test_float_and_uint8_arrays_agree():
    u8 = np.asarray(draw_seven(), dtype=np.uint8)
    np.testing.assert_allclose(preprocess_digit_array(u8 / 255.0),
                               preprocess_digit_array(u8), atol=1e-6)


def test_blank_image_raises(tmp_path):
    path = save(Image.new("L", (100, 100), 255), tmp_path, "blank_page.png")
    with pytest.raises(ValueError, match="blank_page.png.*blank"):
        load_digit_image(path)
    with pytest.raises(ValueError):
        preprocess_digit_array(np.zeros((28, 28)))


def test_files_that_are_not_images_raise_naming_the_file(tmp_path):
    text = tmp_path / "not_an_image.png"
    text.write_bytes(b"this is just some text, not a PNG\n")
    with pytest.raises(ValueError, match="not_an_image.png.*not an image"):
        load_digit_image(text)
    empty = tmp_path / "empty.jpg"
    empty.write_bytes(b"")
    with pytest.raises(ValueError, match="empty.jpg.*not an image"):
        load_digit_image(empty)
    whole = save(draw_seven(), tmp_path, "whole.png").read_bytes()
    truncated = tmp_path / "truncated.png"
    truncated.write_bytes(whole[:len(whole) // 2])
    with pytest.raises(ValueError, match="truncated.png.*cannot read"):
        load_digit_image(truncated)
    with pytest.raises(ValueError, match="missing.png.*no such file"):
        load_digit_image(tmp_path / "missing.png")
    with pytest.raises(ValueError, match="directory"):
        load_digit_image(tmp_path)


@pytest.mark.parametrize("fmt, suffix", [("JPEG", ".jpg"), ("BMP", ".bmp"), ("GIF", ".gif"),
                                         ("TIFF", ".tif"), ("WEBP", ".webp"), ("PPM", ".ppm")])
def test_any_format_pillow_reads_gives_the_same_digit(tmp_path, fmt, suffix):
    Image.init()  # registers every format plugin, so SAVE lists them all
    if fmt not in Image.SAVE:
        pytest.skip(f"this Pillow cannot write {fmt}")
    reference = load_digit_image(save(draw_seven(), tmp_path, "reference.png"))
    path = tmp_path / f"seven{suffix}"
    draw_seven().save(path, format=fmt)
    assert np.corrcoef(load_digit_image(path), reference)[0, 1] > 0.99  # JPEG, WebP are lossy


def test_the_format_is_read_from_the_content_not_the_name(tmp_path):
    reference = load_digit_image(save(draw_seven(), tmp_path, "reference.png"))
    jpeg = tmp_path / "really_a_jpeg.png"
    draw_seven().save(jpeg, format="JPEG")
    assert np.corrcoef(load_digit_image(jpeg), reference)[0, 1] > 0.99


def test_16_bit_images_are_scaled_by_their_range(tmp_path):
    reference = load_digit_image(save(draw_seven(), tmp_path, "reference.png"))
    sixteen = np.asarray(draw_seven(), dtype=np.uint16) * 257   # 0..255 -> 0..65535
    path = tmp_path / "sixteen.png"
    Image.fromarray(sixteen).save(path)
    np.testing.assert_allclose(load_digit_image(path), reference, atol=1e-6)


def test_an_animation_is_read_at_its_first_frame(tmp_path):
    reference = load_digit_image(save(draw_seven(), tmp_path, "reference.png"))
    path = tmp_path / "animated.gif"
    blank = Image.new("L", (200, 200), 255)
    draw_seven().save(path, save_all=True, append_images=[blank], duration=100)
    np.testing.assert_allclose(load_digit_image(path), reference, atol=1e-3)


def test_a_photo_is_turned_upright_by_its_exif_orientation(tmp_path):
    reference = load_digit_image(save(draw_seven(), tmp_path, "reference.png"))
    sideways = draw_seven().rotate(90, expand=True)   # as the sensor saw it
    exif = Image.Exif()
    exif[0x0112] = 6                                  # Orientation: turn 90 degrees clockwise to view
    path = tmp_path / "phone.jpg"
    sideways.save(path, exif=exif)
    assert np.corrcoef(load_digit_image(path), reference)[0, 1] > 0.99
    sideways.save(path)                               # without the note it is read sideways
    assert np.corrcoef(load_digit_image(path), reference)[0, 1] < 0.5


def test_without_pillow_import_works_and_reading_says_pillow_is_needed():
    code = ("import sys; sys.modules['PIL'] = None; import nnscratch\n"
            "try:\n    nnscratch.load_digit_image(sys.argv[1])\n"
            "except ImportError as err:\n    print(err)\n")
    env = dict(os.environ, PYTHONPATH=str(ROOT / "src"))
    out = subprocess.run([sys.executable, "-c", code, str(DRAWN_PNGS[0])], capture_output=True,
                         text=True, env=env, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "Pillow" in out.stdout and "pip install Pillow" in out.stdout


def test_example_files_exist():
    assert len(MNIST_PNGS) >= 10
    assert len(DRAWN_PNGS) >= 6


@pytest.mark.parametrize("path", DRAWN_PNGS, ids=lambda p: p.name)
def test_drawn_examples_load(path):
    assert re.fullmatch(r"drawn_\d\.png", path.name)  # label is in the name
    vec = load_digit_image(path)
    check_valid(vec)
    cy, cx = centre_of_mass(vec.reshape(28, 28))
    assert abs(cy - 14) <= 1 and abs(cx - 14) <= 1


@functools.lru_cache(maxsize=None)
def _read_idx(path, header_bytes):
    with gzip.open(path) as f:
        return np.frombuffer(f.read(), np.uint8, offset=header_bytes)


def read_mnist_test(name, header_bytes):
    """Read an MNIST test idx file directly (16-byte header for images, 8 for labels)."""
    path = MNIST / name
    if not path.exists():
        pytest.skip(f"{path} not present")
    return _read_idx(path, header_bytes)


def read_mnist_test_images():
    return read_mnist_test("t10k-images-idx3-ubyte.gz", 16).reshape(-1, 784)


def read_mnist_test_labels():
    return read_mnist_test("t10k-labels-idx1-ubyte.gz", 8)


@pytest.mark.parametrize("path", MNIST_PNGS, ids=lambda p: p.name)
def test_mnist_examples_reproduce_mnist(path):
    index, label = map(int, re.fullmatch(r"mnist_test_(\d+)_label(\d)\.png", path.name).groups())
    assert read_mnist_test_labels()[index] == label
    original = read_mnist_test_images()[index].astype(np.float64) / 255.0
    vec = load_digit_image(path)
    check_valid(vec)
    assert np.corrcoef(vec, original)[0, 1] > 0.8


def test_rescaled_mnist_digit_is_recovered():
    """Blow an MNIST digit up 5x on a big white page: we should get it back."""
    original = read_mnist_test_images()[0].reshape(28, 28)
    page = Image.fromarray(255 - original).resize((140, 140), Image.Resampling.BICUBIC)
    big = np.full((260, 300), 255, dtype=np.uint8)
    big[70:210, 20:160] = np.asarray(page)
    vec = preprocess_digit_array(big)
    assert np.corrcoef(vec, original.ravel())[0, 1] > 0.8
