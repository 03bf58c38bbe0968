"""Data-parallel training over MPI (nnscratch.distributed) and resumable runs (nnscratch.resume).

The 2-rank tests start ``mpiexec -n 2`` on tests/mpi_scripts/train_small.py, a small float64 MLP
(136 samples in batches of 15: shards of 8 and 7, and a last batch of one that leaves rank 1 an
empty shard). They are skipped when mpi4py or mpiexec is missing (``pip install mpi4py mpich``),
except under CI, where they fail.
"""
import importlib.util
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from nnscratch import SGD, Adam, Callback, CosineAnnealingLR, CSVLogger, EarlyStopping
from nnscratch.training import fit, prepare_targets

SCRIPTS = Path(__file__).parent / "mpi_scripts"
sys.path.insert(0, str(SCRIPTS))
from small_problem import make_data, make_net  # noqa: E402

# Two ranks add their halves' gradients in another order than one process's matrix product does:
# float64 rounding (measured ~1e-15 relative after 20 steps of SGD or Adam), nothing more.
RELATIVE = 1e-12


@pytest.fixture(scope="module")
def mpiexec():
    """The venv's mpiexec (the mpich wheel's, which mpi4py was built against), or a skip."""
    found = Path(sys.executable).parent / "mpiexec"
    found = str(found) if found.exists() else shutil.which("mpiexec")
    if importlib.util.find_spec("mpi4py") is None or found is None:
        if os.environ.get("CI", "").lower() not in ("", "0", "false"):
            pytest.fail("the distributed tests need mpi4py and mpiexec: pip install mpi4py mpich")
        pytest.skip("needs mpi4py and mpiexec: pip install mpi4py mpich")
    return found


def run_ranks(mpiexec, tmp_path, *options, timeout=60):
    """``mpiexec -n 2 python train_small.py OUT.npz OPTIONS``: (completed process, seconds, OUT path)."""
    out = tmp_path / f"weights_{time.monotonic_ns()}.npz"
    env = dict(os.environ, OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1")
    start = time.monotonic()
    done = subprocess.run([mpiexec, "-n", "2", sys.executable, str(SCRIPTS / "train_small.py"), str(out),
                           *options], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=timeout)
    return done, time.monotonic() - start, out


def trained(mpiexec, tmp_path, *options):
    done, _, out = run_ranks(mpiexec, tmp_path, *options)
    assert done.returncode == 0, done.stderr
    return dict(np.load(out))


def one_process(adam):
    """The same run as train_small.py's, in this process without MPI."""
    X, y, X_val, y_val = make_data()
    net = make_net()
    optimizer = Adam(lr=0.01) if adam else SGD(lr=0.1, momentum=0.9)
    history = fit(net, X, y, epochs=2, batch_size=15, optimizer=optimizer,
                  validation_data=(X_val, y_val), callbacks=[CosineAnnealingLR(T_max=2)] if adam else [],
                  verbose=0)
    return net.state_dict(), history


@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
def test_two_ranks_for_20_steps_end_with_the_weights_of_one_process(mpiexec, tmp_path, optimizer):
    ranks = trained(mpiexec, tmp_path, *(["--adam"] if optimizer == "adam" else []))
    weights, history = one_process(optimizer == "adam")
    for key, value in weights.items():
        scale = np.abs(value).max()
        np.testing.assert_allclose(ranks[key], value, rtol=0, atol=RELATIVE * scale, err_msg=key)
    np.testing.assert_allclose(ranks["loss"], history["loss"], rtol=RELATIVE)
    np.testing.assert_allclose(ranks["val_loss"], history["val_loss"], rtol=RELATIVE)


def test_two_rank_runs_with_dropout_are_reproducible(mpiexec, tmp_path):
    first, second = (trained(mpiexec, tmp_path, "--dropout", "--adam") for _ in range(2))
    assert all(np.array_equal(first[key], second[key]) for key in first)


def test_with_batch_norm_the_ranks_end_with_the_same_statistics(mpiexec, tmp_path):
    ranks = trained(mpiexec, tmp_path, "--batchnorm")   # the script checks that every rank's agree
    assert np.all(ranks["batchnorm1.running_var"] != 1)


def test_a_rank_that_raises_stops_the_job_with_its_message(mpiexec, tmp_path):
    done, seconds, _ = run_ranks(mpiexec, tmp_path, "--fail-at", "1", "1", "3", "raise", timeout=30)
    assert done.returncode != 0
    assert "error: rank 1: boom at epoch 1, batch 3" in done.stderr
    assert seconds < 10


def test_a_killed_rank_ends_the_job(mpiexec, tmp_path):
    done, seconds, _ = run_ranks(mpiexec, tmp_path, "--fail-at", "1", "1", "3", "kill", timeout=30)
    assert done.returncode != 0
    assert seconds < 20


def test_a_killed_two_rank_run_resumed_ends_with_the_weights_of_an_uninterrupted_one(mpiexec, tmp_path):
    options = ["--adam", "--dropout", "--epochs", "3"]
    whole = trained(mpiexec, tmp_path, *options)
    checkpoint = str(tmp_path / "resume.pickle")
    killed, _, _ = run_ranks(mpiexec, tmp_path, *options, "--checkpoint", checkpoint,
                             "--fail-at", "1", "2", "1", "kill")
    assert killed.returncode != 0 and os.path.exists(checkpoint)
    resumed = trained(mpiexec, tmp_path, *options, "--checkpoint", checkpoint, "--resume")
    assert all(np.array_equal(whole[key], resumed[key]) for key in whole)


class Crash(Callback):
    """Raises after batch 1 of epoch 2 while ``armed``, a class attribute (a checkpoint keeps none of it)."""
    armed = False

    def on_batch_end(self, run):
        if Crash.armed and (run.epoch, run.batch) == (2, 1):
            raise RuntimeError("crash")


def test_a_run_resumed_in_one_process_ends_as_an_uninterrupted_one(tmp_path):
    X, y, X_val, y_val = make_data(140)   # no batch of one, for batch norm

    def train(folder, resume=False):
        net = make_net(dropout=True, batchnorm=True)
        callbacks = [CosineAnnealingLR(T_max=3), EarlyStopping(patience=10), Crash(),
                     CSVLogger(folder / "log.csv")]
        history = fit(net, X, y, epochs=3, batch_size=15, optimizer=Adam(lr=0.01), verbose=0,
                      validation_data=(X_val, y_val), callbacks=callbacks,
                      checkpoint=folder / "resume.pickle", resume=resume)
        return net, history

    whole, whole_history = train(tmp_path / "whole")
    Crash.armed = True
    with pytest.raises(RuntimeError, match="crash"):
        train(tmp_path / "cut")
    Crash.armed = False
    resumed, history = train(tmp_path / "cut", resume=True)
    assert all(np.array_equal(a, b)
               for a, b in zip(whole.state_dict().values(), resumed.state_dict().values()))
    assert resumed.layers[1].num_batches_tracked == whole.layers[1].num_batches_tracked == 30
    assert history["loss"] == whole_history["loss"] and history["val_loss"] == whole_history["val_loss"]
    rows = (tmp_path / "cut" / "log.csv").read_text().splitlines()
    assert [row.split(",")[0] for row in rows] == ["epoch", "1", "2", "3"]


def test_the_step_on_a_one_rank_communicator_equals_train_step():
    pytest.importorskip("mpi4py")
    from mpi4py import MPI

    from nnscratch.distributed import DistributedSteps
    X, y, _, _ = make_data()
    alone, shared = make_net(), make_net()
    targets, _ = prepare_targets(alone, y, len(X))
    loss, out = alone.train_step(X[:15], targets[:15], return_output=True)
    steps = DistributedSteps(shared, MPI.COMM_SELF)
    loss_1, out_1 = steps.train_step(X[:15], targets[:15], return_output=True)
    assert loss_1 == loss and np.array_equal(out_1, out)
    assert all(np.array_equal(a.grad, b.grad) for a, b in zip(alone.parameters(), shared.parameters()))


def test_distributed_refuses_two_threads_and_resume_needs_a_checkpoint():
    X, y, _, _ = make_data()
    with pytest.raises(ValueError, match="threads=2"):
        fit(make_net(), X, y, distributed=True, threads=2, verbose=0)
    with pytest.raises(ValueError, match="checkpoint"):
        fit(make_net(), X, y, resume=True, verbose=0)


def test_without_mpi4py_the_error_says_what_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "mpi4py", None)
    X, y, _, _ = make_data()
    with pytest.raises(ImportError, match="pip install mpi4py mpich"):
        fit(make_net(), X, y, distributed=True, verbose=0)


def test_the_ranks_on_one_machine_share_its_cores_for_blas(monkeypatch):
    MPI = pytest.importorskip("mpi4py.MPI")
    from nnscratch import distributed
    for name in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        monkeypatch.delenv(name, raising=False)
    assert distributed.blas_threads_per_rank(MPI.COMM_SELF) == os.cpu_count()   # one rank here: every core
    monkeypatch.setenv("OPENBLAS_NUM_THREADS", "1")
    assert distributed.blas_threads_per_rank(MPI.COMM_SELF) is None             # the user's setting stands
