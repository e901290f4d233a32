"""Learning from labels: datasets, weak teachers, strong students, losses, PGR.

Knows nothing of `agents` or `graphs`; labels arrive as plain columns of a dataset.
"""

__all__: list[str] = []
