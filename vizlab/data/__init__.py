"""Datasets: the catalog of known datasets, IDX checks, the bundled MNIST, resident tensors."""
