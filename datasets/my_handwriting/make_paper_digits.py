"""Write the "digit on real paper" test sheets in datasets/my_handwriting/.

Each sheet imitates a phone photo or a scan of a digit pencilled on paper:

* a 200x200 sheet of grey paper (level 150-200 of 255) with a little
  texture (smooth blotches of +-2%) and a few dark specks and fibres;
* lighting that is not even: a linear gradient across the sheet times a
  vignette (darker towards the edges), or, for the "shadow" sheet, one
  corner falling to about 35% of the light elsewhere;
* a real MNIST test digit (datasets/mnist/t10k-*, 28x28) upscaled to a
  digit about 90-120 px tall, placed off-centre and composited as pencil:
  graphite darkens the paper by a factor (1 - 0.5 * coverage), so the ink
  is pencil grey (level ~75-100), not black, with a grainy texture;
* additive Gaussian sensor noise (sigma 8-15 levels), then rounding to
  8 bits.

A "chalk" sheet has light chalk on a dark grey board instead.  Every sheet
is saved as PNG and as JPEG (quality 75).  Files are named
``paper_<label>_<kind>.png`` / ``.jpg``; ``paper_digits.csv`` lists, for each
sheet, the MNIST test index its digit came from and the settings used, so a
test can draw the same digit cleanly and compare.

Which digits: for each class 0-9 the first MNIST test image with index
>= 100 (so they differ from the ``mnist_test_*`` PNGs, which are the first
of each class), plus the second such 4 (chalk) and 2 (shadow).

Deterministic: one seeded ``np.random.Generator`` per sheet.

Run from the repository root:  python datasets/my_handwriting/make_paper_digits.py
"""

import csv
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from make_digits import read_mnist_test   # the sibling script (this folder is on sys.path when run)

HERE = Path(__file__).resolve().parent
SIDE = 200                 # the sheet is SIDE x SIDE pixels
JPEG_QUALITY = 75
PENCIL_DARKNESS = 0.5      # full graphite cover keeps this fraction of the paper's light
CSV_FIELDS = ["name", "label", "mnist_index", "kind", "mode", "paper", "noise_sigma",
              "digit_px", "top", "left"]

# (kind, label, which occurrence >= index 100 of that label, colour mode)
SHEETS = [("pencil", d, 0, "RGB" if d == 5 else "L") for d in range(10)]
SHEETS += [("chalk", 4, 1, "L"), ("shadow", 2, 1, "L")]


def smooth_field(rng, side, cells):
    """A smooth random field in about [-1, 1]: a cells x cells grid of
    uniform noise, enlarged bicubically to side x side."""
    coarse = rng.uniform(0, 255, (cells, cells)).astype(np.uint8)
    big = Image.fromarray(coarse).resize((side, side), Image.Resampling.BICUBIC)
    return np.asarray(big, dtype=np.float64) / 127.5 - 1.0


def lighting(rng, side, shadow_corner=None):
    """Illumination factor (side, side), 1 at its brightest.

    A linear gradient in a random direction (up to 15% across the sheet)
    times a vignette 1 - v r^2 (r = distance from a point near the centre,
    1 at the corners); with ``shadow_corner`` (row, col), each -1 or 1, also
    a Gaussian shadow that takes 65% of the light in that corner."""
    y, x = np.mgrid[0:side, 0:side] / (side - 1) * 2 - 1      # (side, side) each, in [-1, 1]
    angle = rng.uniform(0, 2 * np.pi)
    gradient = 1 + rng.uniform(0.05, 0.075) * (np.cos(angle) * x + np.sin(angle) * y)
    cy, cx = rng.uniform(-0.2, 0.2, 2)
    vignette = 1 - rng.uniform(0.08, 0.18) * ((x - cx) ** 2 + (y - cy) ** 2) / 2
    light = gradient * vignette
    if shadow_corner is not None:
        corner_y, corner_x = shadow_corner
        d2 = (x - corner_x) ** 2 + (y - corner_y) ** 2
        light = light * (1 - 0.65 * np.exp(-d2 / (2 * 0.7 ** 2)))
    return light / light.max()


def paper_texture(rng, side, level):
    """Paper reflectance (side, side) on the 0..255 scale: blotches of +-2%
    plus a few dark specks (dots of 1-2 px) and short fibres."""
    paper = level * (1 + 0.02 * smooth_field(rng, side, 12))
    marks = Image.new("L", (side, side), 0)        # how much each mark darkens, 0..255
    draw = ImageDraw.Draw(marks)
    for _ in range(rng.integers(15, 30)):          # specks
        y, x = rng.uniform(0, side, 2)
        r = rng.uniform(0.5, 1.3)
        draw.ellipse((x - r, y - r, x + r, y + r), fill=int(rng.integers(40, 110)))
    for _ in range(rng.integers(2, 5)):            # fibres
        y, x = rng.uniform(0, side, 2)
        length, angle = rng.uniform(5, 12), rng.uniform(0, np.pi)
        end = (x + length * np.cos(angle), y + length * np.sin(angle))
        draw.line([(x, y), end], fill=int(rng.integers(30, 70)), width=1)
    return paper * (1 - np.asarray(marks, dtype=np.float64) / 255 * 0.5)


def place_digit(rng, digit28, side):
    """Upscale a 28x28 MNIST digit so the digit (20 px in MNIST) is 90-120 px,
    and put it off-centre on a side x side field of coverage in [0, 1].

    Returns (coverage (side, side), digit_px, top, left)."""
    digit_px = int(rng.integers(90, 121))
    field_px = round(digit_px * 28 / 20)          # the 28x28 field around it
    big = Image.fromarray(digit28).resize((field_px, field_px), Image.Resampling.BICUBIC)
    big = np.asarray(big, dtype=np.float64) / 255
    # off-centre: the field's middle at least 15 px from the sheet's, inside the sheet
    room = side - field_px                        # > 30: fields are at most 168 px
    while True:
        top, left = rng.integers(0, room + 1, 2)
        if np.hypot(top - room / 2, left - room / 2) >= 15:
            break
    coverage = np.zeros((side, side))
    coverage[top:top + field_px, left:left + field_px] = big
    return coverage, digit_px, int(top), int(left)


def render(kind, digit28, rng, mode):
    """Render one sheet; return (uint8 image (H, W) or (H, W, 3), settings)."""
    coverage, digit_px, top, left = place_digit(rng, digit28, SIDE)
    # graphite and chalk are grainy: coverage varies by +-20% along the stroke
    grain = 1 - 0.2 * np.abs(smooth_field(rng, SIDE, 60))
    coverage = np.clip(coverage * 1.15, 0, 1) * grain
    # the shadow falls on the corner nearest the digit, so part of the digit is in it
    middle = top + round(digit_px * 0.7), left + round(digit_px * 0.7)   # the field's middle
    corner = tuple(1 if m > SIDE / 2 else -1 for m in middle)
    light = lighting(rng, SIDE, corner if kind == "shadow" else None)
    noise_sigma = float(rng.uniform(8, 15))
    if kind == "chalk":
        level = float(rng.uniform(45, 70))                   # dark grey board
        board = paper_texture(rng, SIDE, level)
        surface = board + (215 - board) * 0.85 * coverage    # light chalk
    else:
        level = float(rng.uniform(150, 200))
        surface = paper_texture(rng, SIDE, level) * (1 - PENCIL_DARKNESS * coverage)
    image = surface * light
    if mode == "RGB":                                        # warm paper, under warm light
        image = image[..., None] * np.array([1.0, 0.96, 0.88])
    image = image + rng.normal(0, noise_sigma, image.shape)
    image = np.clip(np.round(image), 0, 255).astype(np.uint8)
    settings = {"kind": kind, "mode": mode, "paper": round(level), "noise_sigma": round(noise_sigma, 1),
                "digit_px": digit_px, "top": top, "left": left}
    return image, settings


def write_paper_digits():
    images, labels = read_mnist_test()
    rows = []
    for number, (kind, label, occurrence, mode) in enumerate(SHEETS):
        index = int(np.flatnonzero((labels == label) & (np.arange(len(labels)) >= 100))[occurrence])
        rng = np.random.default_rng(1000 + number)
        image, settings = render(kind, images[index], rng, mode)
        name = f"paper_{label}_{kind}"
        Image.fromarray(image).save(HERE / f"{name}.png", optimize=True)
        Image.fromarray(image).save(HERE / f"{name}.jpg", quality=JPEG_QUALITY)
        rows.append({"name": name, "label": label, "mnist_index": index, **settings})
    with open(HERE / "paper_digits.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, CSV_FIELDS)
        writer.writeheader()
        writer.writerows(rows)
    return rows


if __name__ == "__main__":
    rows = write_paper_digits()
    print("wrote", 2 * len(rows), "paper sheets (PNG and JPEG) and paper_digits.csv to", HERE)
