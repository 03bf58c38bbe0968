"""Resumable training: a checkpoint, after every epoch, of everything the next epoch depends on.

``fit(..., checkpoint="runs/cnn/cnn_resume.pickle")`` writes, once every
epoch's callbacks have run (rank 0 alone, in a distributed run):

- the network's weights and buffers (``state_dict``: batch norm's statistics
  too, and its ``num_batches_tracked``);
- the optimizer's attributes: ``lr``, the step count ``t``, its buffers per
  parameter (Adam's moments, SGD's momentum, the copy for undo);
- the epoch and the history;
- every rank's generator state (the shuffling, dropout, augmentation to come);
- every callback's attributes (a schedule's base rate, ``EarlyStopping``'s
  count and best weights, ``CSVLogger``'s rows written...).

``fit(..., checkpoint=path, resume=True)`` starts after that epoch (from the
start when there is no file yet, so one command serves both) and ends with
the weights an uninterrupted run would have, bit for bit
(tests/test_distributed.py). It must be asked for the same number of epochs;
the optimizer and the callbacks continue as saved (their settings in this
call are replaced by the checkpoint's).
What is not kept: a stateful recurrent layer's state (reset it at each epoch,
as the char-LSTM example does), and callbacks' files written after the last
checkpoint (a CSV row may then appear twice).

The file is a pickle read back by nnscratch's restricted loader
(``persistence.load``: dicts, lists, numbers, NumPy arrays, nnscratch classes;
a callback's attribute of any other class is refused when resuming). It is
written to ``path + ".tmp"`` and then renamed, so a run killed while
writing leaves the previous checkpoint whole.
"""
import os
import pickle

from . import persistence
from .distributed import OnRootOnly

FORMAT = "nnscratch-checkpoint-1"


def _attributes(obj):
    """``vars(obj)`` but the optimizer's last parameters (the network's own, restored as weights)."""
    return {key: value for key, value in vars(obj).items() if key != "_last_params"}


def _kind(callback):
    return callback.kind if isinstance(callback, OnRootOnly) else type(callback).__name__


def _callback_state(callback):
    attributes = _attributes(callback)
    try:
        pickle.dumps(attributes)
    except Exception as err:
        raise TypeError(f"{type(callback).__name__} cannot be kept in a checkpoint: its attributes must be "
                        f"numbers, strings, lists, dicts or arrays ({err})") from None
    return type(callback).__name__, attributes


def write(path, run, parallel=None):
    """Write ``run``'s checkpoint to ``path`` (in a distributed run every rank calls this, rank 0 writes)."""
    rngs = parallel.rng_states() if parallel else [run.net.rng.bit_generator.state]
    if parallel and not parallel.is_root:
        return
    state = {"format": FORMAT, "epoch": run.epoch, "epochs": run.epochs, "network": run.net.state_dict(),
             "optimizer": (type(run.optimizer).__name__, _attributes(run.optimizer)),
             "counters": {name: layer.num_batches_tracked for name, layer in run.net.named_layers()
                          if hasattr(layer, "num_batches_tracked")},
             "history": dict(run.history), "rngs": rngs,
             "callbacks": [_callback_state(callback) for callback in run.callbacks]}
    temporary = os.fspath(path) + ".tmp"
    persistence.save(state, temporary)
    os.replace(temporary, path)


def read(path, parallel=None):
    """The checkpoint at ``path``, or None when there is none (rank 0 reads; every rank gets it)."""
    state = None
    if parallel is None or parallel.is_root:
        if os.path.exists(path):
            state = persistence.load(path)
            if not isinstance(state, dict) or state.get("format") != FORMAT:
                raise ValueError(f"{path} is not an nnscratch training checkpoint "
                                 f"(written by fit(checkpoint=...))")
    return parallel.comm.bcast(state, root=0) if parallel else state


def restore(run, state, parallel=None):
    """Put ``state`` (from ``read``) into ``run``: network, optimizer, history, generators, callbacks.
    Returns the last epoch it had finished. Everything is checked before anything is changed."""
    net, optimizer = run.net, run.optimizer
    saved_kinds, kinds = [kind for kind, _ in state["callbacks"]], [_kind(c) for c in run.callbacks]
    ranks = parallel.size if parallel else 1
    if state["epochs"] != run.epochs:   # a schedule over the run (cosine) would continue the old one's
        raise ValueError(f"the checkpoint is of a run of {state['epochs']} epochs, this one asks for "
                         f"{run.epochs}: resuming continues that run, so give epochs={state['epochs']}")
    differing = sorted(set(net.state_dict()) ^ set(state["network"]))
    if differing:
        raise ValueError(f"the checkpoint does not fit this network: it differs in {differing[:4]}")
    if state["optimizer"][0] != type(optimizer).__name__:
        raise ValueError(f"the checkpoint was trained with {state['optimizer'][0]}, this run has "
                         f"{type(optimizer).__name__}")
    if saved_kinds != kinds:
        raise ValueError(f"the checkpoint's callbacks {saved_kinds} are not this run's {kinds}: "
                         f"give the same ones, in the same order")
    if len(state["rngs"]) != ranks:
        raise ValueError(f"the checkpoint was written by a run of {len(state['rngs'])} rank(s), this one "
                         f"has {ranks}: resume it with mpiexec -n {len(state['rngs'])} (distributed=True)")
    net.load_state_dict(state["network"])
    for name, layer in net.named_layers():
        if name in state["counters"]:
            layer.num_batches_tracked = state["counters"][name]
    vars(optimizer).update(state["optimizer"][1])
    optimizer._last_params = []
    run.history.clear()
    run.history.update(state["history"])
    for callback, (_, attributes) in zip(run.callbacks, state["callbacks"]):
        if not isinstance(callback, OnRootOnly):
            vars(callback).update(attributes)
    rank = parallel.rank if parallel else 0
    net.rng.bit_generator.state = state["rngs"][rank]   # in place: the dropout layers hold this generator
    return state["epoch"]
