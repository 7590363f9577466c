"""The SD3 formulation study at small scale: MNIST, a trained-classifier Fréchet distance and
conditional accuracy, repeated non-dominated sorting, resumable parallel runs. `genlab t2i study`."""
