"""The README's code runs as written, so it cannot drift from the code.

- Every ```python block runs on its own, as a user who saves it as a script
  would run it (a fresh namespace, in an empty folder), with small sizes:
  MNIST is cut to its first 500 training and 250 test images and every
  training run to one epoch (``load_mnist``, ``get_mnist``, ``fit`` and
  ``stochastic_gradient_descent`` are wrapped to do so).
  Blocks that import torch are run by ``benchmarks/torch_transfer.py --readme``
  under PyTorch's own Python instead (PyTorch is no dependency of the tests).
- Every ``python src/build_network.py ...`` line of a ```bash block runs
  through the driver's ``main``; training examples get ``--epochs 1 --limit
  256 --quiet --out <tmp>`` appended, ``--plot`` files go to the temporary
  folder. The other shell lines (``make``, ``pip``, benchmarks) are what CI
  and the benchmarks run.
- The main job's first epoch line in the README is what the code prints.
- One block also runs as a real script from another folder, with no path set:
  ``import nnscratch`` must work there after ``make`` set up the environment.
"""
import importlib.metadata
import os
import re
import shlex
import subprocess
import sys

import pytest

import build_network
import nnscratch
from nnscratch import Network

ROOT = os.path.normpath(os.path.join(os.path.dirname(__file__), ".."))
with open(os.path.join(ROOT, "README.md"), encoding="utf-8") as f:
    README = f.read()
BLOCKS = re.findall(r"^```(\w*)\n(.*?)^```", README, flags=re.M | re.S)
# Blocks that import torch need PyTorch, which is no dependency of nnscratch or its tests:
# benchmarks/torch_transfer.py --readme runs them, under PyTorch's own Python.
PYTHON_BLOCKS = [code for lang, code in BLOCKS if lang == "python" and "import torch" not in code]
TORCH_BLOCKS = [code for lang, code in BLOCKS if lang == "python" and "import torch" in code]
COMMANDS = [line.split("  #")[0].strip() for lang, code in BLOCKS if lang == "bash"
            for line in code.splitlines() if line.startswith("python src/build_network.py")]


@pytest.fixture
def small_sizes(monkeypatch):
    """MNIST cut to 500 + 250 images, every training run to one epoch."""
    load_mnist, get_mnist = nnscratch.load_mnist, nnscratch.get_mnist
    fit, sgd = Network.fit, Network.stochastic_gradient_descent

    def small_mnist(*args, **kwargs):
        X_train, y_train, X_test, y_test = load_mnist(*args, **kwargs)
        return X_train[:500], y_train[:500], X_test[:250], y_test[:250]

    def small_tuples(*args, **kwargs):
        training, test = get_mnist(*args, **kwargs)
        return training[:500], test[:250]

    def one_epoch_fit(self, X, y, epochs=1, *args, **kwargs):
        return fit(self, X, y, 1, *args, **kwargs)

    def one_epoch_sgd(self, training_data, epochs, *args, **kwargs):
        return sgd(self, training_data, 1, *args, **kwargs)

    monkeypatch.setattr(nnscratch, "load_mnist", small_mnist)
    monkeypatch.setattr(nnscratch, "get_mnist", small_tuples)
    monkeypatch.setattr(Network, "fit", one_epoch_fit)
    monkeypatch.setattr(Network, "stochastic_gradient_descent", one_epoch_sgd)


def test_the_readme_has_code_to_run():
    assert len(PYTHON_BLOCKS) >= 6 and len(COMMANDS) >= 4


def test_the_blocks_that_need_pytorch_are_run_by_the_torch_script():
    with open(os.path.join(ROOT, "benchmarks", "torch_transfer.py"), encoding="utf-8") as f:
        script = f.read()
    assert TORCH_BLOCKS and "import torch" in TORCH_BLOCKS[0]
    assert 'lang == "python" and "import torch" in code' in script   # the same selection as here


@pytest.mark.parametrize("index", range(len(PYTHON_BLOCKS)))
def test_readme_python_block_runs_as_a_script(index, small_sizes, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code = PYTHON_BLOCKS[index]
    exec(compile(code, f"README.md python block {index + 1}", "exec"), {"__name__": "__main__"})


@pytest.mark.parametrize("command", COMMANDS)
def test_readme_command_runs(command, tmp_path, capsys):
    argv = shlex.split(command)[2:]
    if "--plot" in argv:
        at = argv.index("--plot") + 1
        argv[at] = str(tmp_path / os.path.basename(argv[at]))
    if argv and argv[0] in build_network.EXAMPLES:
        argv += ["--epochs", "1", "--limit", "256", "--quiet", "--out", str(tmp_path)]
    assert build_network.main(argv) == 0, capsys.readouterr().err


def test_the_readme_shows_the_main_jobs_first_epoch_as_the_code_prints_it(tmp_path, capsys):
    shown = re.search(r"^Epoch 0: Test_data: (\d+) / 10000 Train Cost = ([\d.]+) Test Cost = ([\d.]+)$",
                      README, flags=re.M)
    assert shown, "the README should show the main job's epoch lines"
    assert build_network.main(["--epochs", "1", "--out", str(tmp_path)]) == 0
    printed = re.search(r"^Epoch 0: Test_data: (\d+) / 10000 Train Cost = ([\d.]+) Test Cost = ([\d.]+)$",
                        capsys.readouterr().out, flags=re.M)
    # Bit for bit on the CPU the README was measured on; other CPUs' BLAS kernels round differently.
    assert abs(int(printed[1]) - int(shown[1])) <= 3
    assert float(printed[2]) == pytest.approx(float(shown[2]), rel=1e-3)
    assert float(printed[3]) == pytest.approx(float(shown[3]), rel=1e-3)


def test_a_readme_block_runs_as_a_script_from_any_folder(tmp_path):
    try:
        importlib.metadata.distribution("nnscratch")
    except importlib.metadata.PackageNotFoundError:
        if os.environ.get("CI"):
            raise AssertionError("nnscratch is not installed in the test environment: run the tests with `make test`")
        pytest.skip("nnscratch is not installed in this environment (`make test` installs it)")
    script = tmp_path / "my_script.py"
    script.write_text(PYTHON_BLOCKS[0].split("training_data, testing_data")[0] + "print(Network)\n")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    result = subprocess.run([sys.executable, str(script)], cwd=tmp_path, env=env, capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stderr
    assert "nnscratch.network.Network" in result.stdout
