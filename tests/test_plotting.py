"""Figures are written off-screen: no display needed, nothing blocks."""
import os
import subprocess
import sys

from PIL import Image

ROOT = os.path.normpath(os.path.join(os.path.dirname(__file__), ".."))


def test_history_plot_is_written_without_a_display(tmp_path):
    # A fresh interpreter with no DISPLAY and an interactive backend requested:
    # plotting must neither fail nor open a window.
    script = (
        "from nnscratch.plotting import plot_history\n"
        "h = {'loss': [1.0, 0.5, 0.3], 'accuracy': [0.5, 0.7, 0.8],"
        " 'val_loss': [1.1, 0.6, 0.4], 'val_accuracy': [0.4, 0.6, 0.7]}\n"
        f"plot_history(h, {str(tmp_path / 'sub' / 'curves.png')!r}, title='t')\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "DISPLAY"}
    env["MPLBACKEND"] = "TkAgg"
    env["PYTHONPATH"] = os.path.join(ROOT, "src")
    subprocess.run([sys.executable, "-c", script], env=env, check=True, timeout=60)
    with Image.open(tmp_path / "sub" / "curves.png") as image:
        assert image.size[0] > 500 and image.size[1] > 200


def test_plot_augmentations_writes_a_png(tmp_path):
    import numpy as np
    from nnscratch import augment, plotting
    images = np.random.default_rng(0).random((2, 28, 28), dtype=np.float32)
    path = plotting.plot_augmentations(images, augment.RandomShift(2), np.random.default_rng(1),
                                       tmp_path / "aug.png", versions=3)
    assert open(path, "rb").read(8) == b"\x89PNG\r\n\x1a\n"
