"""A small float64 MLP trained by fit(..., distributed=True): run by tests/test_distributed.py under mpiexec.

    mpiexec -n 2 python train_small.py OUT.npz [--adam] [--dropout] [--epochs 2]
        [--checkpoint PATH [--resume]] [--fail-at RANK EPOCH BATCH raise|kill]

Rank 0 writes the final weights (and the loss history) to OUT.npz.
"""
import argparse
import os
import signal
import sys

import numpy as np

from nnscratch import Adam, Callback, CosineAnnealingLR, SGD
from nnscratch.distributed import is_root, rank, run_guard, world
from nnscratch.training import fit

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from small_problem import make_data, make_net  # noqa: E402


FAIL_AT = None   # (rank, epoch, batch, "raise" or "kill") from --fail-at


class FailAt(Callback):
    """Raise (or SIGKILL this process) on rank R after batch B of epoch E, as ``FAIL_AT`` says.

    Every run has this callback, armed or not: it keeps no attributes (a checkpoint
    restores a callback's attributes), so a run resumed without --fail-at runs on.
    """

    def on_batch_end(self, run):
        if FAIL_AT and (rank(), run.epoch, run.batch) == FAIL_AT[:3]:
            if FAIL_AT[3] == "kill":
                os.kill(os.getpid(), signal.SIGKILL)
            raise RuntimeError(f"boom at epoch {run.epoch}, batch {run.batch}")


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("out")
    parser.add_argument("--adam", action="store_true")
    parser.add_argument("--dropout", action="store_true")
    parser.add_argument("--batchnorm", action="store_true", help="(and 140 samples: no batch of one)")
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--checkpoint")
    parser.add_argument("--resume", action="store_true")
    parser.add_argument("--fail-at", nargs=4, metavar=("RANK", "EPOCH", "BATCH", "HOW"))
    args = parser.parse_args()
    X, y, X_val, y_val = make_data(140 if args.batchnorm else 136)
    net = make_net(dropout=args.dropout, batchnorm=args.batchnorm)
    global FAIL_AT
    if args.fail_at:
        FAIL_AT = (*map(int, args.fail_at[:3]), args.fail_at[3])
    callbacks = ([CosineAnnealingLR(T_max=args.epochs)] if args.adam else []) + [FailAt()]
    optimizer = Adam(lr=0.01) if args.adam else SGD(lr=0.1, momentum=0.9)
    history = fit(net, X, y, epochs=args.epochs, batch_size=15, optimizer=optimizer,
                  validation_data=(X_val, y_val), callbacks=callbacks, verbose=0, distributed=True,
                  checkpoint=args.checkpoint, resume=args.resume)
    everywhere = world().allgather(net.state_dict())   # weights and batch norm's statistics
    if any(not np.array_equal(state[key], everywhere[0][key]) for state in everywhere for key in state):
        raise RuntimeError("the ranks ended with different weights or statistics")
    if is_root():
        np.savez(args.out, loss=np.array(history["loss"]), val_loss=np.array(history["val_loss"]),
                 **net.state_dict())


if __name__ == "__main__":
    with run_guard():
        main()
