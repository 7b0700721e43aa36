"""Composing (Hydra) and validating (typed schema) Podium's configuration."""

from pipeline.config.compose import compose, find_root
from pipeline.config.schema import Config

__all__ = ["Config", "compose", "find_root"]
