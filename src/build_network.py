"""The driver: train the examples, or classify a PNG digit with a shipped network.

    python src/build_network.py                 # Example 1: the seed's MNIST net (784-50-10), 20 epochs
    python src/build_network.py clusters        # Example 2: the seed's cluster classifier
    python src/build_network.py mlp800          # 784-800-800-10 with dropout, Adam: 98.5%+
    python src/build_network.py cnn             # the reference CNN: 99.3%+
    python src/build_network.py predict datasets/my_handwriting/drawn_3.png

Each training example prints one line per epoch (with a progress bar within
the epoch), saves its cost/accuracy curves to plots/ and the trained network
to pre-trained/.
"""
import argparse
import os
import sys
import time

import numpy as np

from nnscratch import (Adam, CosineAnnealingLR, Network, cross_entropy_cost, cross_entropy_cost_prime_SM,
                       gen_clusters, get_mnist, load_digit_image, load_mnist, quadratic_cost, quadratic_cost_prime)
from nnscratch.plotting import (plot_clusters, plot_digit_probabilities, plot_feature_maps, plot_filters,
                                plot_history)

ROOT = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
PLOTS = os.path.join(ROOT, "plots")
PRE_TRAINED = os.path.join(ROOT, "pre-trained")
DEFAULT_MODEL = os.path.join(PRE_TRAINED, "mlp50.pickle")


def train_mnist(args):
    """Example 1, the seed's: 784-50 ReLU-10 ReLU-softmax, cross-entropy, SGD 20 epochs, batch 32, eta 0.04."""
    training_data, testing_data = get_mnist()
    net = Network(784, cross_entropy_cost, cross_entropy_cost_prime_SM, seed=args.seed)
    net.add_fc_layer(50)
    net.add_relu_layer(50)
    net.add_fc_layer(10)
    net.add_relu_layer(10)
    net.add_softmax_layer(10)
    print(net.summary())
    start = time.perf_counter()
    history = net.stochastic_gradient_descent(training_data, args.epochs or 20, 32, 0.04, testing_data)
    print(f"trained in {time.perf_counter() - start:.1f} s "
          f"({np.median(history['time']):.2f} s per epoch of training, median)")
    finish(net, history, "mlp50", "MNIST 784-50-10, SGD eta 0.04, batch 32")


def train_clusters(args):
    """Example 2, the seed's: 2-4 sigmoid-3 sigmoid, quadratic cost, SGD 30 epochs, batch 50, eta 0.9."""
    training_data, test_data, choices = gen_clusters(seed=args.seed)
    net = Network(2, quadratic_cost, quadratic_cost_prime, seed=args.seed)
    net.add_fc_layer(4)
    net.add_sigmoid_layer(4)
    net.add_fc_layer(3)
    net.add_sigmoid_layer(3)
    history = net.stochastic_gradient_descent(training_data, args.epochs or 30, 50, 0.9, test_data)
    for x in ([[0.3], [0.3]], [[0.6], [0.5]]):
        point = np.array(x)
        print(f"point ({point[0, 0] * 500:.0f}, {point[1, 0] * 500:.0f}) is {choices[np.argmax(net.forward_pass(point))]}")
    print("saved", plot_clusters(net, test_data, choices, os.path.join(PLOTS, "clusters_regions.png")))
    finish(net, history, "clusters", "clusters 2-4-3 sigmoid, quadratic cost")


def finish(net, history, name, title):
    """Save the curves and the network; print where they went."""
    curves = plot_history(history, os.path.join(PLOTS, f"{name}_curves.png"), title=title)
    path = os.path.join(PRE_TRAINED, f"{name}.pickle")
    net.save(path)
    print(f"saved {os.path.relpath(curves, ROOT)} and {os.path.relpath(path, ROOT)}")
    if history["val_accuracy"]:
        print(f"final test accuracy {history['val_accuracy'][-1]:.4f}")


def build_mlp800(seed=0, dropout=0.2):
    """784-800-800-10 ReLU MLP with dropout after each hidden layer (PyTorch's mlp800 reference)."""
    net = Network(784, cost="cross_entropy", seed=seed)
    for _ in range(2):
        net.add_fc_layer(800)
        net.add_relu_layer()
        if dropout:
            net.add_dropout_layer(dropout)
    net.add_fc_layer(10)
    net.add_softmax_layer()
    return net


def train_mlp800(args):
    """784-800-800-10 with dropout 0.2, Adam 1e-3 annealed by a cosine over the run, batch 128."""
    X_train, y_train, X_test, y_test = load_mnist()
    net = build_mlp800(args.seed)
    print(net.summary())
    epochs = args.epochs or 20
    history = net.fit(X_train, y_train, epochs=epochs, batch_size=128, optimizer=Adam(lr=1e-3),
                      validation_data=(X_test, y_test), callbacks=[CosineAnnealingLR(T_max=epochs)])
    print(f"{np.median(history['time']):.2f} s per epoch of training (median)")
    finish(net, history, "mlp800", "MNIST 784-800-800-10, dropout 0.2, Adam + cosine, batch 128")


def build_cnn(seed=0, impl="fast"):
    """The reference CNN: conv 32 3x3, ReLU, max-pool 2, conv 64 3x3, ReLU, max-pool 2,
    flatten, FC 128, ReLU, dropout 0.5, FC 10 (PyTorch's cnn reference)."""
    net = Network((1, 28, 28), cost="cross_entropy", seed=seed)
    net.add_conv_layer(32, 3, impl=impl)
    net.add_relu_layer()
    net.add_maxpool_layer(2, impl=impl)
    net.add_conv_layer(64, 3, impl=impl)
    net.add_relu_layer()
    net.add_maxpool_layer(2, impl=impl)
    net.add_flatten_layer()
    net.add_fc_layer(128)
    net.add_relu_layer()
    net.add_dropout_layer(0.5)
    net.add_fc_layer(10)
    net.add_softmax_layer()
    return net


def train_cnn(args):
    """The reference CNN, Adam 1e-3 annealed by a cosine over the run, batch 64."""
    X_train, y_train, X_test, y_test = load_mnist()
    X_train, X_test = X_train.reshape(-1, 1, 28, 28), X_test.reshape(-1, 1, 28, 28)   # (N, C, H, W)
    net = build_cnn(args.seed)
    print(net.summary())
    epochs = args.epochs or 15
    start = time.perf_counter()
    history = net.fit(X_train, y_train, epochs=epochs, batch_size=64, optimizer=Adam(lr=1e-3),
                      validation_data=(X_test, y_test), callbacks=[CosineAnnealingLR(T_max=epochs)])
    print(f"trained in {(time.perf_counter() - start) / 60:.1f} min, "
          f"{np.median(history['time']):.1f} s per epoch of training (median)")
    finish(net, history, "cnn", "MNIST CNN (conv32-pool-conv64-pool-fc128), Adam + cosine, batch 64")
    print("saved", os.path.relpath(plot_filters(net.layers[0], os.path.join(PLOTS, "cnn_filters.png")), ROOT),
          "and", os.path.relpath(plot_feature_maps(net, X_test[0], os.path.join(PLOTS, "cnn_feature_maps.png")), ROOT))


def predict(args):
    """Classify a PNG digit with a shipped network; print the digit and the ten probabilities."""
    net = Network.load(args.model)
    image = load_digit_image(args.png)
    x = image.reshape((1,) + net.input_shape)
    probabilities = net.predict_proba(x)[0]
    digit = int(np.argmax(probabilities))
    print(f"It is a .... {digit}")
    print("  ".join(f"{d}: {p:.3f}" for d, p in enumerate(probabilities)))
    if args.plot:
        print("saved", plot_digit_probabilities(image, probabilities, args.plot))


EXAMPLES = {"mnist": train_mnist, "clusters": train_clusters, "mlp800": train_mlp800, "cnn": train_cnn}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("example", nargs="?", default="mnist", choices=sorted(EXAMPLES) + ["predict"],
                        help="what to run (default: mnist)")
    parser.add_argument("png", nargs="?", help="for predict: the PNG file of a digit")
    parser.add_argument("--model", default=DEFAULT_MODEL, help="for predict: the network file")
    parser.add_argument("--plot", help="for predict: also save the digit and its probabilities to this PNG")
    parser.add_argument("--epochs", type=int, default=None, help="override the example's epoch count")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    args = parser.parse_args(argv)
    if args.example == "predict":
        if not args.png:
            parser.error("predict needs a PNG file: build_network.py predict path/to/digit.png")
        return predict(args)
    return EXAMPLES[args.example](args)


if __name__ == "__main__":
    sys.exit(main())
