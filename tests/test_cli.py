"""The command line as a user meets it: options, outputs that never overwrite what ships, one-line errors."""
import csv
import hashlib
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import build_network

ROOT = os.path.normpath(os.path.join(os.path.dirname(__file__), ".."))
SCRIPT = os.path.join(ROOT, "src", "build_network.py")
DIGIT = os.path.join(ROOT, "datasets", "my_handwriting", "mnist_test_0_label7.png")
SHIPPED = [os.path.join(folder, name) for folder in ("pre-trained", "plots")
           for name in sorted(os.listdir(os.path.join(ROOT, folder)))]


def run(capsys, *argv):
    """``build_network.py argv`` in this process: (exit status, stdout, stderr)."""
    status = build_network.main(list(argv))
    out, err = capsys.readouterr()
    return status, out, err


def digest(path):
    with open(os.path.join(ROOT, path), "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def assert_one_line_error(status, out, err, *words):
    assert status != 0
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    assert "Traceback" not in err
    for word in words:
        assert word in lines[0], lines[0]


# -- training examples ------------------------------------------------------------------
def test_a_quick_run_writes_network_curves_and_metrics_to_the_output_folder(capsys, tmp_path):
    before = {path: digest(path) for path in SHIPPED}
    status, out, _ = run(capsys, "mnist", "--epochs", "2", "--limit", "600", "--batch-size", "20",
                         "--lr", "0.1", "--out", str(tmp_path / "quick"))
    assert status == 0
    folder = tmp_path / "quick"
    assert sorted(os.listdir(folder)) == ["mlp50.pickle", "mlp50.safetensors", "mlp50_curves.png",
                                          "mlp50_metrics.csv"]
    assert str(folder / "mlp50.pickle") in out                   # printed as an absolute path
    assert str(folder / "mlp50.safetensors") in out
    with open(folder / "mlp50_metrics.csv") as f:
        rows = list(csv.DictReader(f))
    assert [int(r["epoch"]) for r in rows] == [1, 2]
    assert [float(r["lr"]) for r in rows] == [0.1, 0.1]
    assert out.count("Epoch ") == 2                               # the seed's epoch lines
    assert {path: digest(path) for path in SHIPPED} == before     # nothing that ships changed
    net = build_network.Network.load(folder / "mlp50.pickle")
    assert net.input_shape == (784,) and net.output_shape == (10,)
    safe = build_network.Network.load(folder / "mlp50.safetensors")
    np.testing.assert_array_equal(safe.layers[0].W.data, net.layers[0].W.data)


def test_limit_trains_on_the_first_n_samples(capsys, tmp_path):
    status, out, _ = run(capsys, "mlp800", "--epochs", "1", "--limit", "256", "--quiet", "--out", str(tmp_path))
    assert status == 0
    with open(tmp_path / "mlp800_metrics.csv") as f:
        (row,) = list(csv.DictReader(f))
    # 256 samples in batches of 128: two batches, so the time is that of a tiny epoch
    assert float(row["time"]) < 2.0


def test_quiet_prints_only_the_result(capsys, tmp_path):
    status, out, err = run(capsys, "clusters", "--epochs", "3", "--quiet", "--out", str(tmp_path))
    assert status == 0
    assert "Epoch" not in out and "Epoch" not in err and "params" not in out
    assert out.startswith("final test accuracy ")
    assert "clusters_regions.png" in out


def test_without_out_a_run_goes_to_the_ignored_runs_folder(capsys):
    status, out, _ = run(capsys, "clusters", "--epochs", "1", "--quiet")
    assert status == 0
    assert os.path.join(ROOT, "runs", "clusters", "clusters.pickle") in out
    ignored = subprocess.run(["git", "check-ignore", "-q", "runs/clusters/clusters.pickle"], cwd=ROOT)
    assert ignored.returncode == 0, "runs/ must be ignored by git"


def test_each_example_help_shows_its_defaults_and_expected_time(capsys):
    for name, (_, _, epochs, batch_size, lr, _, duration) in build_network.EXAMPLES.items():
        with pytest.raises(SystemExit) as exit_:
            build_network.main([name, "--help"])
        assert exit_.value.code == 0
        text = " ".join(capsys.readouterr().out.split())
        assert f"(default {epochs})" in text and f"(default {batch_size})" in text
        assert f"(default {lr:g})" in text and duration in text, name
        for option in ("--epochs", "--batch-size", "--lr", "--seed", "--limit", "--out", "--quiet"):
            assert option in text


@pytest.mark.parametrize("argv, words", [
    (["--epochs", "0"], ["--epochs", "positive integer", "'0'"]),
    (["cnn", "--batch-size", "-3"], ["--batch-size", "'-3'"]),
    (["mnist", "--lr", "fast"], ["--lr", "'fast'"]),
    (["mnist", "stray"], ["unrecognized arguments: stray"]),
    (["mlp900"], ["invalid choice", "mlp900"]),
    (["predict"], ["image"]),
])
def test_command_line_mistakes_are_one_line_errors(capsys, argv, words):
    status, out, err = run(capsys, *argv)
    assert status == 2
    assert_one_line_error(status, out, err, *words)


# -- predict ------------------------------------------------------------------------------
@pytest.mark.parametrize("model", build_network.DIGIT_CLASSIFIERS)
def test_predict_works_with_every_shipped_digit_classifier(capsys, model):
    status, out, _ = run(capsys, "predict", DIGIT, "--model", model)
    assert status == 0
    first, second = out.strip().splitlines()
    assert first == "It is a .... 7"
    probabilities = [float(part.split(": ")[1]) for part in second.split("  ")]
    assert len(probabilities) == 10 and abs(sum(probabilities) - 1) < 0.01


def test_predict_uses_the_shipped_network_by_default(capsys):
    args = build_network.make_parser().parse_args(["predict", DIGIT])
    assert build_network.find_network(args.model) == os.path.join(ROOT, "pre-trained", "mlp50.safetensors")


@pytest.mark.parametrize("suffix, fmt", [(".jpg", "JPEG"), (".bmp", "BMP"), (".gif", "GIF"), (".webp", "WEBP")])
def test_predict_reads_any_image_pillow_reads(capsys, tmp_path, suffix, fmt):
    path = tmp_path / f"seven{suffix}"
    with Image.open(DIGIT) as image:
        image.convert("L").resize((112, 112)).save(path, fmt)
    status, out, _ = run(capsys, "predict", str(path))
    assert status == 0 and out.splitlines()[0] == "It is a .... 7"


def test_predict_accepts_a_network_path(capsys):
    status, out, _ = run(capsys, "predict", DIGIT, "--model", os.path.join(ROOT, "pre-trained", "cnn.pickle"))
    assert status == 0 and out.splitlines()[0] == "It is a .... 7"


def user_mistakes(tmp_path):
    """Each mistake: the command line and words its error line must contain."""
    text, empty = tmp_path / "notes.txt", tmp_path / "empty.png"
    return {
        "a missing image": (["predict", str(tmp_path / "nothing.png")], ["nothing.png", "no such file"]),
        "a folder as the image": (["predict", str(tmp_path)], ["folder"]),
        "a text file as the image": (["predict", str(text)], ["notes.txt"]),
        "an empty file as the image": (["predict", str(empty)], ["empty.png"]),
        "a missing network": (["predict", DIGIT, "--model", str(tmp_path / "net.pickle")], ["no such file"]),
        "a folder as the network": (["predict", DIGIT, "--model", str(tmp_path)], ["folder"]),
        "an image as the network": (["predict", DIGIT, "--model", DIGIT], ["not"]),
        "the character model": (["predict", DIGIT, "--model", "charlm"], ["not a digit classifier"]),
        "the character model by path": (["predict", DIGIT, "--model",
                                         os.path.join(ROOT, "pre-trained", "charlm.pickle")],
                                        ["not a digit classifier"]),
        "an output path that is a file": (["clusters", "--out", str(text)], ["not a folder"]),
    }


@pytest.mark.parametrize("mistake", list(user_mistakes(Path("."))))
def test_user_mistakes_print_one_line_and_exit_non_zero(capsys, tmp_path, mistake):
    (tmp_path / "notes.txt").write_text("not an image\n")
    (tmp_path / "empty.png").write_bytes(b"")
    argv, words = user_mistakes(tmp_path)[mistake]
    assert_one_line_error(*run(capsys, *argv), *words)


def test_a_mistake_in_a_real_process_has_no_traceback(tmp_path):
    result = subprocess.run([sys.executable, SCRIPT, "predict", str(tmp_path / "missing.png")],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [f"error: {tmp_path / 'missing.png'}: no such file"]


# -- data-parallel over MPI ---------------------------------------------------------------
def mpiexec_or_skip():
    mpiexec = os.path.join(os.path.dirname(sys.executable), "mpiexec")
    if not os.path.exists(mpiexec):
        if os.environ.get("CI"):
            pytest.fail("CI must have mpiexec (pip install mpi4py mpich, from requirements.txt)")
        pytest.skip("needs mpi4py and mpich (pip install mpi4py mpich)")
    return mpiexec


def test_mlp800_trains_on_two_ranks_and_rank_0_alone_prints_and_writes(tmp_path):
    command = [mpiexec_or_skip(), "-n", "2", sys.executable, os.path.join(ROOT, "src", "build_network.py"),
               "mlp800", "--distributed", "--epochs", "2", "--limit", "512", "--out", str(tmp_path)]
    done = subprocess.run(command, capture_output=True, text=True, timeout=180,
                          env=dict(os.environ, OPENBLAS_NUM_THREADS="1"))
    assert done.returncode == 0, done.stderr
    assert done.stdout.count("final test accuracy") == 1 and done.stdout.count("Epoch 2/2") == 1
    assert sorted(os.listdir(tmp_path)) == ["mlp800.pickle", "mlp800.safetensors", "mlp800_curves.png",
                                            "mlp800_metrics.csv", "mlp800_resume.pickle"]
    # --resume after the last epoch: nothing left to train, the same network comes out
    first = build_network.Network.load(tmp_path / "mlp800.safetensors")
    again = subprocess.run(command + ["--resume"], capture_output=True, text=True, timeout=180,
                           env=dict(os.environ, OPENBLAS_NUM_THREADS="1"))
    assert again.returncode == 0, again.stderr
    second = build_network.Network.load(tmp_path / "mlp800.safetensors")
    for key, value in first.state_dict().items():
        np.testing.assert_array_equal(second.state_dict()[key], value, err_msg=key)
