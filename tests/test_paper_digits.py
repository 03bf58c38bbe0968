"""Digits on real paper: grey, shaded, noisy sheets are read like clean drawings.

The sheets are ``datasets/my_handwriting/paper_<label>_<kind>.png`` and
``.jpg`` (made by ``make_paper_digits.py``): a real MNIST test digit
pencilled, off-centre, on a 200x200 sheet of grey paper with uneven light,
sensor noise and specks; one in light chalk on a dark board; one with a
corner deep in shadow.  ``paper_digits.csv`` says which MNIST test digit each
sheet shows, so the tests can draw the same digit cleanly, independently of
the generator, and compare.

MNIST centres a digit by an integer shift of its centre of mass, so when a
centre of mass falls near half a pixel, two renderings of one digit can come
out one pixel apart.  The comparisons below therefore take the best of the
nine alignments within one pixel.
"""

import csv
import functools
import gzip
import re
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw

from nnscratch import Network
from nnscratch.digit_image import load_digit_image, preprocess_digit_array

ROOT = Path(__file__).resolve().parents[1]
HANDWRITING = ROOT / "datasets" / "my_handwriting"
MNIST_TEST_IMAGES = ROOT / "datasets" / "mnist" / "t10k-images-idx3-ubyte.gz"
PRETRAINED = ROOT / "pre-trained"
NETWORKS = ["mlp50", "cnn", "lstm"]
PNGS = sorted(HANDWRITING.glob("paper_*.png"))
SHEETS = PNGS + [png.with_suffix(".jpg") for png in PNGS]
NAME = re.compile(r"paper_(\d)_([a-z]+)\.(png|jpg)")


def label_of(path):
    return int(NAME.fullmatch(path.name).group(1))


@functools.lru_cache(maxsize=None)
def manifest():
    """{sheet name without suffix: its row of paper_digits.csv}."""
    with open(HANDWRITING / "paper_digits.csv", newline="") as f:
        return {row["name"]: row for row in csv.DictReader(f)}


@functools.lru_cache(maxsize=None)
def mnist_test_images():
    """The MNIST test images (10000, 28, 28), read straight from the IDX file (16-byte header)."""
    if not MNIST_TEST_IMAGES.exists():
        pytest.skip(f"{MNIST_TEST_IMAGES} not present")
    with gzip.open(MNIST_TEST_IMAGES) as f:
        return np.frombuffer(f.read(), np.uint8, offset=16).reshape(-1, 28, 28)


def clean_version(path):
    """The sheet's MNIST digit drawn cleanly, black on white at 140 px, preprocessed."""
    index = int(manifest()[path.stem]["mnist_index"])
    digit = Image.fromarray(255 - mnist_test_images()[index])
    return preprocess_digit_array(np.asarray(digit.resize((140, 140), Image.Resampling.BICUBIC)))


def aligned_correlation(a, b):
    """Best correlation of two 28x28 images (as vectors) over shifts of up to one pixel."""
    a, b = a.reshape(28, 28), b.reshape(28, 28)
    return max(np.corrcoef(np.roll(a, (dy, dx), axis=(0, 1)).ravel(), b.ravel())[0, 1]
               for dy in (-1, 0, 1) for dx in (-1, 0, 1))


def ink_box(vec):
    """(top, bottom, left, right) of the non-zero pixels of a 28x28 image, inclusive."""
    ink = vec.reshape(28, 28) > 0
    rows, cols = np.flatnonzero(ink.any(axis=1)), np.flatnonzero(ink.any(axis=0))
    return rows[0], rows[-1], cols[0], cols[-1]


def noise_sigma(gray):
    """Independent estimate of an image's noise: MAD of horizontal neighbour differences."""
    d = np.diff(np.asarray(gray, dtype=np.float64), axis=1).ravel()
    return 1.4826 * np.median(np.abs(d - np.median(d))) / np.sqrt(2)


@functools.lru_cache(maxsize=None)
def vector(path):
    return load_digit_image(path)


# -- the sheets are what they claim to be ------------------------------------------------

def test_the_sheets_cover_six_digits_chalk_and_shadow_as_png_and_jpeg():
    assert len(PNGS) >= 8
    assert len({label_of(p) for p in PNGS}) >= 6
    kinds = {NAME.fullmatch(p.name).group(2) for p in PNGS}
    assert {"pencil", "chalk", "shadow"} <= kinds
    for path in SHEETS:
        assert path.exists(), f"{path.name} is missing"
        with Image.open(path) as img:
            assert img.size == (200, 200) and img.format == ("PNG" if path.suffix == ".png" else "JPEG")
        assert path.stem in manifest() and int(manifest()[path.stem]["label"]) == label_of(path)


@pytest.mark.parametrize("path", PNGS, ids=lambda p: p.name)
def test_the_paper_is_grey_noisy_and_unevenly_lit(path):
    gray = np.asarray(Image.open(path).convert("L"), dtype=np.float64)
    paper = np.median(gray)
    corners = [gray[:20, :20].mean(), gray[:20, -20:].mean(), gray[-20:, :20].mean(), gray[-20:, -20:].mean()]
    assert 5 < noise_sigma(gray) < 20
    assert max(corners) - min(corners) > 8                    # the light is not even
    kind = NAME.fullmatch(path.name).group(2)
    if kind == "chalk":
        assert paper < 90                                      # a dark board
    else:
        assert 130 < paper < 210                               # grey paper, not white
        assert gray.min() > 20 and np.percentile(gray, 1) > 50  # pencil, not black ink
    if kind == "shadow":
        assert min(corners) < 0.5 * paper                      # one corner much darker


# -- (a) a paper digit is the same digit as a clean drawing of it --------------------------

@pytest.mark.parametrize("path", SHEETS, ids=lambda p: p.name)
def test_a_paper_digit_matches_the_same_digit_drawn_clean(path):
    assert aligned_correlation(vector(path), clean_version(path)) > 0.9


# -- (b) the crop is the digit, not the sheet ------------------------------------------

@pytest.mark.parametrize("path", SHEETS, ids=lambda p: p.name)
def test_the_crop_is_the_digit_not_the_sheet(path):
    vec = vector(path)
    top, bottom, left, right = ink_box(vec)
    assert 19 <= max(bottom - top + 1, right - left + 1) <= 20   # the digit fills the 20-px box
    # ... the same box as the clean drawing's, to a pixel, so no speck or shadow widened it
    np.testing.assert_allclose(ink_box(vec), ink_box(clean_version(path)), atol=1)
    assert (vec == 0).mean() > 0.5                               # the paper became exactly 0
    assert vec.reshape(28, 28)[[0, -1]].max() == 0 and vec.reshape(28, 28)[:, [0, -1]].max() == 0


# -- (c) the shipped networks read them ----------------------------------------------------

@pytest.fixture(scope="module")
def networks():
    return {name: Network.load(PRETRAINED / f"{name}.pickle") for name in NETWORKS}


@pytest.mark.parametrize("name", NETWORKS)
def test_the_shipped_networks_read_every_paper_digit(networks, name):
    net = networks[name]
    X = np.stack([vector(path) for path in SHEETS]).reshape((-1,) + net.input_shape)  # (N, *input_shape)
    predicted = net.predict(X)
    misread = [f"{path.name} as {p}" for path, p in zip(SHEETS, predicted) if p != label_of(path)]
    assert not misread, f"{name} misreads {misread}"


# -- (d) JPEG and PNG of a sheet agree ---------------------------------------------------

@pytest.mark.parametrize("png", PNGS, ids=lambda p: p.name)
def test_png_and_jpeg_of_a_sheet_give_nearly_the_same_vector(png):
    assert aligned_correlation(vector(png), vector(png.with_suffix(".jpg"))) > 0.95


# -- (e) the failure seen before: a digit on grey noisy paper shrank to a dot ------------------

def draw_four(draw, ink, top=30, left=60, scale=1.0):
    """A handwritten-looking '4' in three strokes, about 100 px tall at scale 1."""
    def p(x, y):
        return left + scale * x, top + scale * y
    draw.line([p(45, 0), p(0, 65), p(65, 65)], fill=ink, width=round(11 * scale), joint="curve")
    draw.line([p(48, 30), p(50, 105)], fill=ink, width=round(11 * scale))


def grey_paper(shading, digit=True, seed=0, side=200):
    """A sheet of grey paper (level 175, noise sigma 12), a corner a quarter darker if
    ``shading``, with a pencil-grey 4 drawn off-centre if ``digit``: uint8 (side, side)."""
    rng = np.random.default_rng(seed)
    coverage = Image.new("L", (side, side), 0)
    if digit:
        draw_four(ImageDraw.Draw(coverage), 255, top=0.15 * side, left=0.45 * side, scale=side / 200)
    y, x = np.mgrid[0:side, 0:side] / side                    # (side, side) each
    light = 1 - 0.25 * x * y if shading else 1.0
    paper = 175 * (1 - 0.45 * np.asarray(coverage) / 255) * light
    return np.clip(np.round(paper + rng.normal(0, 12, paper.shape)), 0, 255).astype(np.uint8)


def clean_four():
    img = Image.new("L", (200, 200), 255)
    draw_four(ImageDraw.Draw(img), 0)
    return preprocess_digit_array(np.asarray(img))


@pytest.mark.parametrize("shading", [False, True], ids=["flat", "shaded"])
@pytest.mark.parametrize("fmt", ["PNG", "JPEG"])
def test_a_digit_on_grey_noisy_paper_fills_the_20_pixel_box(tmp_path, shading, fmt):
    path = tmp_path / f"four.{fmt.lower()}"
    Image.fromarray(grey_paper(shading)).save(path, format=fmt, quality=75)
    vec = load_digit_image(path)
    top, bottom, left, right = ink_box(vec)
    assert 19 <= max(bottom - top + 1, right - left + 1) <= 20   # before: the sheet's box, a dot
    assert aligned_correlation(vec, clean_four()) > 0.9


def test_a_big_noisy_photo_is_read_like_a_small_one(networks):
    big = grey_paper(shading=True, seed=1, side=1000)
    vec = preprocess_digit_array(big)
    assert aligned_correlation(vec, clean_four()) > 0.9
    assert networks["mlp50"].predict(vec[None])[0] == 4


@pytest.mark.parametrize("shading", [False, True], ids=["flat", "shaded"])
def test_grey_noisy_paper_without_a_digit_is_blank(shading):
    with pytest.raises(ValueError, match="blank"):
        preprocess_digit_array(grey_paper(shading, digit=False, seed=2))
