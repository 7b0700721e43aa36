"""Podium: machine-learning competitions from raw files to a validated submission."""

__version__ = "0.1.0"
