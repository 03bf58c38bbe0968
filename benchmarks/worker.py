"""The child process of one nnscratch row: ``python -m benchmarks.worker SPEC_JSON``.

Run by ``harness.nnscratch_job`` in the repository root, one fresh process
per training. Prints its result as one line, ``RESULT_TAG`` then JSON.
"""
import json
import os
import sys

import numpy as np

from benchmarks import REPO  # first: it puts src/ on sys.path
from benchmarks.harness import RESULT_TAG, memory_status, reset_peak_rss
from benchmarks.models import MODELS, N_TRAIN, seed_baseline

import nnscratch  # after benchmarks, which chose the src/ it comes from

MNIST = os.path.join(REPO, "datasets", "mnist")  # this checkout's, also for a --baseline library


def run(spec):
    """Run the job ``spec`` (a dict made by ``harness.plan_rows``); returns a JSON-able dict.

    ``kind == "fit"``: load MNIST (from this checkout), warm up on ``warmup`` images (untimed, a
    separate network), train a fresh network (seed ``seed``) on the first
    ``images`` training images for ``epochs`` epochs with ``net.fit``
    (progress bar off), extrapolate each epoch's time to 60,000 images, then
    optionally evaluate (in batches of the training batch size, so
    evaluation needs no more memory than a training batch) and time each
    layer (``layer_times``). ``kind == "seed"``: the seed's per-sample loop.

    Returns
    -------
    dict with ``sec_per_epoch`` and ``measured`` (lists, one per epoch),
    ``test_acc`` (or None), ``loaded_rss_mb`` (after loading MNIST),
    ``training_peak_rss_mb`` (from then to the end of training), ``library``
    (the folder nnscratch was imported from), and with
    ``layer_times`` asked for, ``layer_times``.
    """
    model = MODELS[spec["model"]]
    X, y, X_test, y_test = nnscratch.load_mnist(MNIST)
    X, X_test = X.reshape((-1,) + model.input_shape), X_test.reshape((-1,) + model.input_shape)
    memory = {"loaded_rss_mb": memory_status("VmRSS"),  # Python, NumPy and MNIST, after the parse
              "library": os.path.dirname(os.path.abspath(nnscratch.__file__))}
    reset_peak_rss()
    if spec["kind"] == "seed":
        extrapolated, measured = seed_baseline(X, y, spec["samples"], np.random.default_rng(spec["seed"]),
                                               np.dtype(spec["dtype"]))
        return dict(memory, sec_per_epoch=[extrapolated], measured=[measured], test_acc=None,
                    training_peak_rss_mb=memory_status("VmHWM"))
    warmup = spec["warmup"]
    if warmup:
        model.build(12345, spec["variant"]).fit(X[:warmup], y[:warmup], epochs=1, batch_size=model.batch,
                                                 optimizer=model.optimizer(), verbose=0)
    n = spec["images"]
    net, optimizer = model.build(spec["seed"], spec["variant"]), model.optimizer()
    history = net.fit(X[:n], y[:n], epochs=spec["epochs"], batch_size=model.batch,
                      optimizer=optimizer, verbose=0)
    result = dict(memory, training_peak_rss_mb=memory_status("VmHWM"), measured=list(history["time"]),
                  sec_per_epoch=[t * N_TRAIN / n for t in history["time"]])
    result["test_acc"] = (net.evaluate(X_test, y_test, batch_size=model.batch)["accuracy"]
                          if spec["evaluate"] else None)
    if spec["layer_times"]:
        from benchmarks.layer_times import time_layers
        result["layer_times"] = time_layers(net, optimizer, X[:n], y[:n], model.batch)
    return result


def main(argv):
    print(RESULT_TAG + json.dumps(run(json.loads(argv[1]))), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
