"""Datasets shipped in packages (digits, MNIST), video decoding, shards."""
