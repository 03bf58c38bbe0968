"""What a training run shows and records: the bar, the epoch lines, verbose=0,
the history as a DataFrame, and the CSV log written epoch by epoch.

stderr is replaced by a StringIO: a plain one is what a log file looks like
(not a terminal), and ``Terminal`` below is one that says it is a terminal.
"""
import csv
import io
import os
import re
import signal
import sys
from functools import partial

import numpy as np
import pytest
from conftest import toy_classes

from nnscratch import Callback, CSVLogger, Network, gen_clusters


class Terminal(io.StringIO):
    """A stderr that says it is a terminal, so fit draws its bar into it."""

    def isatty(self):
        return True


small_data = partial(toy_classes, n=60, d=6, k=3)      # X (60, 6) uniform in [0, 1), y in {0, 1, 2}


def mlp(d=6, k=3):
    net = Network(d, seed=0)
    net.add_fc_layer(8)
    net.add_relu_layer()
    net.add_fc_layer(k)
    net.add_softmax_layer()
    return net


def seed_net():
    net = Network(2, cost="quadratic", seed=0)
    net.add_fc_layer(4)
    net.add_sigmoid_layer()
    net.add_fc_layer(3)
    net.add_sigmoid_layer()
    return net


def bar_labels(stderr_text):
    return sorted(set(re.findall(r"Epoch [\d/]+", stderr_text)))


# -- the bar and the epoch lines --------------------------------------------------------------
def test_on_a_terminal_the_bar_and_the_line_name_the_epoch_alike(capsys, monkeypatch):
    monkeypatch.setattr(sys, "stderr", Terminal())
    X, y = small_data()
    mlp().fit(X, y, epochs=2, batch_size=10, verbose=1)
    assert bar_labels(sys.stderr.getvalue()) == ["Epoch 1/2", "Epoch 2/2"]
    lines = capsys.readouterr().out.splitlines()
    assert [line.split(":")[0] for line in lines] == ["Epoch 1/2", "Epoch 2/2"]


def test_the_seed_interface_bar_counts_epochs_from_0_like_its_lines(capsys, monkeypatch):
    monkeypatch.setattr(sys, "stderr", Terminal())
    training_data, test_data, _ = gen_clusters(n_samples=200)
    seed_net().stochastic_gradient_descent(training_data, 2, 10, 0.9, test_data)
    assert bar_labels(sys.stderr.getvalue()) == ["Epoch 0", "Epoch 1"]
    lines = capsys.readouterr().out.splitlines()
    assert [line.split(":")[0] for line in lines] == ["Epoch 0", "Epoch 1"]
    assert lines[0].startswith("Epoch 0: Test_data: ")


def test_when_stderr_is_not_a_terminal_there_is_no_bar_and_one_line_per_epoch(capsys, monkeypatch):
    log = io.StringIO()
    monkeypatch.setattr(sys, "stderr", log)
    X, y = small_data()
    mlp().fit(X, y, epochs=3, batch_size=10, validation_data=(X[:20], y[:20]), verbose=1)
    assert "\r" not in log.getvalue() and log.getvalue() == ""
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 3
    assert all(re.match(rf"Epoch {e}/3: loss [\d.]+ accuracy [\d.]+ val_loss", line)
               for e, line in zip((1, 2, 3), lines))


def test_verbose_0_prints_nothing_even_on_a_terminal(capsys, monkeypatch):
    monkeypatch.setattr(sys, "stderr", Terminal())
    X, y = small_data()
    mlp().fit(X, y, epochs=2, verbose=0)
    training_data, test_data, _ = gen_clusters(n_samples=200)
    seed_net().stochastic_gradient_descent(training_data, 2, 10, 0.9, test_data, verbose=0)
    assert sys.stderr.getvalue() == ""
    assert capsys.readouterr() == ("", "")


# -- the history as a table ------------------------------------------------------------------------
class BitsPerCharacter(Callback):
    """A record a user adds to the history: one value per epoch."""

    def on_epoch_end(self, run):
        run.history.setdefault("bits_per_character", []).append(run.history["loss"][-1] / np.log(2))


def test_history_to_dataframe_has_one_row_per_epoch_and_every_record():
    X, y = small_data()
    history = mlp().fit(X, y, epochs=3, batch_size=10, validation_data=(X[:20], y[:20]),
                        callbacks=[BitsPerCharacter()], verbose=0)
    frame = history.to_dataframe()
    assert list(frame.columns) == ["epoch", "loss", "accuracy", "val_loss", "val_accuracy", "time", "lr",
                                   "bits_per_character"]
    assert frame["epoch"].tolist() == [1, 2, 3]
    for key in frame.columns[1:]:
        assert frame[key].tolist() == history[key]


def test_history_without_validation_data_has_no_validation_columns():
    X, y = small_data()
    frame = mlp().fit(X, y, epochs=2, verbose=0).to_dataframe()
    assert list(frame.columns) == ["epoch", "loss", "accuracy", "time", "lr"]
    assert len(frame) == 2


# -- the CSV log -----------------------------------------------------------------------------------------
def read_csv(path):
    with open(path, newline="") as f:
        return list(csv.reader(f))


class RowCounter(Callback):
    """Placed after the CSVLogger: how many data rows the file holds at each epoch's end."""

    def __init__(self, path):
        self.path, self.rows = path, []

    def on_epoch_end(self, run):
        self.rows.append(len(read_csv(self.path)) - 1)


def test_csv_logger_writes_a_header_and_one_row_per_epoch_matching_the_history(tmp_path):
    path = tmp_path / "runs" / "first" / "log.csv"  # the folders do not exist yet
    X, y = small_data()
    counter = RowCounter(path)
    history = mlp().fit(X, y, epochs=3, batch_size=10, validation_data=(X[:20], y[:20]),
                        callbacks=[BitsPerCharacter(), CSVLogger(path), counter], verbose=0)
    header, *rows = read_csv(path)
    assert header == ["epoch", "loss", "accuracy", "val_loss", "val_accuracy", "time", "lr",
                      "bits_per_character"]
    assert [int(row[0]) for row in rows] == [1, 2, 3]
    for column, key in enumerate(header[1:], start=1):
        assert [float(row[column]) for row in rows] == history[key]  # written at full precision
    assert counter.rows == [1, 2, 3]  # each row was on disk when its epoch ended


def test_csv_logger_starts_a_new_file_or_appends_without_a_second_header(tmp_path):
    path = tmp_path / "log.csv"
    X, y = small_data()
    mlp().fit(X, y, epochs=2, callbacks=[CSVLogger(path)], verbose=0)
    mlp().fit(X, y, epochs=1, callbacks=[CSVLogger(path)], verbose=0)
    assert [row[0] for row in read_csv(path)] == ["epoch", "1"]
    mlp().fit(X, y, epochs=2, callbacks=[CSVLogger(path, append=True)], verbose=0)
    assert [row[0] for row in read_csv(path)] == ["epoch", "1", "1", "2"]


def test_csv_logger_keeps_the_rows_of_a_run_stopped_by_ctrl_c(tmp_path):
    path = tmp_path / "log.csv"
    X, y = small_data()

    class PressCtrlC(Callback):
        def on_batch_end(self, run):
            if run.epoch == 2 and run.batch == 2:
                os.kill(os.getpid(), signal.SIGINT)

    history = mlp().fit(X, y, epochs=5, batch_size=10, callbacks=[CSVLogger(path), PressCtrlC()], verbose=0)
    assert history.interrupted and history.epochs == 2
    rows = read_csv(path)[1:]
    assert [row[0] for row in rows] == ["1", "2"]  # the cut-short epoch too, as the history records it
    assert [float(row[1]) for row in rows] == history["loss"]


@pytest.mark.parametrize("append", [False, True])
def test_csv_logger_is_exported_and_takes_a_path_like(tmp_path, append):
    import nnscratch

    assert "CSVLogger" in nnscratch.__all__
    logger = CSVLogger(tmp_path / "log.csv", append=append)
    assert logger.path == str(tmp_path / "log.csv") and logger.append is append
