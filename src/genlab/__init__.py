"""genlab: six published generative systems as real, fast, tested software."""

__version__ = "0.1.0"
