"""Running oversight graphs over datasets and joining their labels to the W2SG core.

Also home of the `w2sg` CLI, since this is the one package allowed to import all the others.
"""

from oversight.experiments.config import ExperimentConfig

__all__ = ["ExperimentConfig"]
