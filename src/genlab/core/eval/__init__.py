"""Validation loss, Frechet distance over any feature extractor, classifiers we train."""
