"""vizlab: train the classic MNIST-family models and watch them live in Visdom."""

__version__ = "0.1.0"
