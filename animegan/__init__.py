"""animegan: train a DCGAN on anime faces and sample new ones."""

__version__ = "0.1.0"
