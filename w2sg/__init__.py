"""Learning from labels: datasets, weak teachers, strong students, losses, PGR.

Knows nothing of `agents` or `graphs`; labels arrive as plain p(true) columns of a dataset.

The names below are imported on first use (PEP 562), so `w2sg.data` and `w2sg.metrics` (which a
labelling run against an API model needs) load without torch; the training modules bring it in.
"""

from __future__ import annotations

import importlib
from typing import Any

# name → the module that defines it
_EXPORTS = {
    "w2sg.data": [
        "DataError",
        "Example",
        "label_source",
        "make_example",
        "split_by_question",
        "with_labels",
    ],
    "w2sg.datasets": ["PRESETS", "DatasetSpec", "load", "load_split", "register"],
    "w2sg.ensembles": ["EnsembleConfig", "EnsembleResult", "bagging", "boosting", "run_ensemble"],
    "w2sg.experiment": ["Sizes", "W2SGConfig", "run_experiment"],
    "w2sg.results": ["ExperimentResult", "ICLResult", "SeedsResult"],
    "w2sg.seeds": ["run_seeds"],
    "w2sg.icl": ["SELECTORS", "ICLConfig", "build_messages", "select_demos"],
    "w2sg.icl_experiment": ["run_icl"],
    "w2sg.losses": ["LOSSES", "LogConfLoss", "Loss", "ProductLoss", "XentLoss", "get_loss"],
    "w2sg.methods": ["METHODS", "Method", "MethodInput", "Supervision", "register_method"],
    "w2sg.metrics": [
        "Estimate",
        "LabelQuality",
        "accuracy",
        "accuracy_ci",
        "auc",
        "auc_ci",
        "auc_pgr_ci",
        "brier",
        "ece",
        "label_quality",
        "pgr",
        "pgr_ci",
    ],
    "w2sg.models": ["LoraConfig", "ModelConfig", "build_classifier"],
    "w2sg.train": ["TrainConfig", "TrainResult", "predict", "train"],
}
_WHERE = {name: module for module, names in _EXPORTS.items() for name in names}
__all__ = sorted(_WHERE)


def __getattr__(name: str) -> Any:
    if name not in _WHERE:
        raise AttributeError(f"module 'w2sg' has no attribute {name!r}")
    return getattr(importlib.import_module(_WHERE[name]), name)


def __dir__() -> list[str]:
    return __all__
