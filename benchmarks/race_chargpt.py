"""The character GPT against the character LSTM, with the same wall-time budget, in one run.

Both train on the same 90% of the KJV Pentateuch and are scored on the same
held-out tenth (bits per character), for ``--minutes`` of training each (the
clock stops while they are evaluated), one after the other in this process:

- GPT: ``src/model_zoo.build_char_gpt`` trained by ``src/chargpt.train``
  (random windows, AdamW, warm-up + cosine over the time budget, clipping).
- LSTM: ``build_char_lm`` (embedding 48, LSTM, per-step FC), trained as
  ``build_network.py charlm`` trains it (stateful truncated BPTT over 100
  characters, 64 streams, Adam with clipping at 5), retuned for a budget
  longer than its shipped 2.5 minutes: the cosine decay runs over the time
  budget instead of 8 epochs, and ``--lstm-hidden`` sets its width.

Prints both curves as they go and writes the chart of held-out bits per
character against training seconds (``--plot``) and the numbers (``--csv``).

Usage: python benchmarks/race_chargpt.py [--minutes 10] [--plot runs/race/race.png]
"""
import argparse
import os
import sys
import time


HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "src"))
sys.path.insert(0, os.path.join(HERE, ".."))

import chargpt                                                       # noqa: E402
from model_zoo import build_char_gpt, build_char_lm                   # noqa: E402
from nnscratch import Adam, Callback, text                           # noqa: E402
from nnscratch.schedules import warmup_cosine                         # noqa: E402

from benchmarks.machine import cpu_model, blas_info, describe_blas  # noqa: E402


class TimeBudget(Callback):
    """Cosine learning rate over a training-time budget, and stop at the first epoch end that
    would run past it. Evaluation time (``paused``) does not count."""

    def __init__(self, seconds, base_lr, min_lr):
        self.seconds, self.base_lr, self.min_lr = seconds, base_lr, min_lr
        self.trained, self.epoch_seconds, self.paused = 0.0, [], 0.0

    def on_epoch_begin(self, run):
        self.started, self.paused = time.perf_counter(), 0.0

    def on_batch_end(self, run):
        done = (self.trained + time.perf_counter() - self.started - self.paused) / self.seconds
        run.optimizer.lr = warmup_cosine(run.batch, done, self.base_lr, 0, self.min_lr)

    def on_epoch_end(self, run):
        self.epoch_seconds.append(run.history["time"][-1])
        self.trained += self.epoch_seconds[-1]
        if self.trained + self.epoch_seconds[-1] > self.seconds * 1.02:   # the next epoch would overrun
            run.stop()


def race_lstm(vocab, train_ids, held_ids, seconds, hidden, lr, seed, log):
    streams, seq_len = 64, 100
    X, Y = text.bptt_batches(train_ids, streams, seq_len)
    net = build_char_lm(len(vocab), hidden=hidden, seed=seed)
    budget = TimeBudget(seconds, lr, 0.0)
    curve = [(0.0, text.bits_per_character(net, held_ids))]

    class Report(Callback):
        def on_epoch_begin(self, run):
            run.net.reset_state()

        def on_epoch_end(self, run):
            curve.append((budget.trained, text.bits_per_character(run.net, held_ids)))
            log(f"  lstm {curve[-1][0]:7.1f} s  epoch {run.epoch}: held-out {curve[-1][1]:.3f} bits per character")

    net.fit(X, Y, epochs=10_000, batch_size=streams, shuffle=False, optimizer=Adam(lr=lr, clip_norm=5.0),
            callbacks=[budget, Report()], verbose=0)
    return curve


def race_gpt(vocab, train_ids, held_ids, seconds, lr, seed, log):
    net = build_char_gpt(len(vocab), seed=seed)
    curve = [(0.0, chargpt.held_out_bits(net, held_ids, chargpt.CONTEXT))]

    def report(history):
        curve.append((history["seconds"][-1], history["bits_per_character"][-1]))
        log(f"  gpt  {curve[-1][0]:7.1f} s  step {history['steps'][-1]}: held-out {curve[-1][1]:.3f} bits per "
            f"character")

    chargpt.train(net, train_ids, held_ids, context=chargpt.CONTEXT, lr=lr, seconds=seconds, seed=seed,
                  evaluations=12, verbose=0, on_evaluation=report)
    return curve


def plot(curves, path, minutes):
    from matplotlib.figure import Figure
    fig = Figure(figsize=(7, 4.5))
    ax = fig.add_subplot(1, 1, 1)
    for label, curve in curves.items():
        xs, ys = zip(*curve[1:])                                     # from the first evaluation on
        ax.plot(xs, ys, marker="o", label=f"{label}: {ys[-1]:.3f}")
    ax.axhline(1.69, color="grey", linestyle=":", label="shipped LSTM (2.5 min): 1.69")
    ax.set_xlabel("training seconds")
    ax.set_ylabel("held-out bits per character")
    ax.set_title(f"KJV Pentateuch, {minutes:g} minutes of training each")
    ax.grid(alpha=0.3)
    ax.legend()
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    fig.savefig(path, dpi=110, bbox_inches="tight")
    return path


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, default=10.0, help="training time of each model (default 10)")
    parser.add_argument("--lstm-hidden", type=int, default=256, help="the LSTM's width (default 256, as shipped)")
    parser.add_argument("--lstm-lr", type=float, default=2e-3, help="the LSTM's Adam learning rate (default 2e-3)")
    parser.add_argument("--gpt-lr", type=float, default=2e-3, help="the GPT's AdamW learning rate (default 2e-3)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--only", choices=("gpt", "lstm"), help="run one of the two")
    parser.add_argument("--plot", default=os.path.join("runs", "race", "chargpt_vs_lstm.png"))
    parser.add_argument("--csv", default=os.path.join("runs", "race", "chargpt_vs_lstm.csv"))
    args = parser.parse_args(argv)
    print(f"CPU: {cpu_model()}, {os.cpu_count()} cores; BLAS: {describe_blas(blas_info())}", flush=True)
    vocab, train_ids, held_ids = chargpt.load_corpus()
    seconds = args.minutes * 60

    def log(line):
        print(line, flush=True)

    curves = {}
    if args.only != "lstm":
        log(f"GPT (4 blocks of 128, 4 heads, context {chargpt.CONTEXT}), {args.minutes:g} minutes:")
        curves["GPT"] = race_gpt(vocab, train_ids, held_ids, seconds, args.gpt_lr, args.seed, log)
    if args.only != "gpt":
        log(f"LSTM({args.lstm_hidden}), {args.minutes:g} minutes:")
        curves[f"LSTM({args.lstm_hidden})"] = race_lstm(vocab, train_ids, held_ids, seconds, args.lstm_hidden,
                                                       args.lstm_lr, args.seed, log)
    os.makedirs(os.path.dirname(os.path.abspath(args.csv)), exist_ok=True)
    with open(args.csv, "w") as f:
        f.write("model,training_seconds,held_out_bits_per_character\n")
        for label, curve in curves.items():
            f.writelines(f"{label},{s:.1f},{b:.4f}\n" for s, b in curve)
    for label, curve in curves.items():
        log(f"{label}: final held-out {curve[-1][1]:.3f} bits per character after {curve[-1][0]:.0f} s")
    log(f"saved {os.path.abspath(plot(curves, args.plot, args.minutes))} and {os.path.abspath(args.csv)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
