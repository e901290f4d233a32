"""Learning from labels: datasets, weak teachers, strong students, losses, PGR.

Knows nothing of `agents` or `graphs`; labels arrive as plain p(true) columns of a dataset.
"""

from w2sg.data import (
    DataError,
    Example,
    label_source,
    load_dataset,
    load_sciq,
    make_example,
    split_by_question,
    with_labels,
)
from w2sg.experiment import ExperimentResult, Sizes, W2SGConfig, run_experiment
from w2sg.losses import LOSSES, LogConfLoss, Loss, ProductLoss, XentLoss, get_loss
from w2sg.metrics import Estimate, LabelQuality, accuracy, accuracy_ci, brier, ece, label_quality, pgr, pgr_ci
from w2sg.models import LoraConfig, ModelConfig, build_classifier
from w2sg.train import TrainConfig, TrainResult, predict, train

__all__ = [
    "LOSSES",
    "DataError",
    "Estimate",
    "Example",
    "ExperimentResult",
    "LabelQuality",
    "LogConfLoss",
    "LoraConfig",
    "Loss",
    "ModelConfig",
    "ProductLoss",
    "Sizes",
    "TrainConfig",
    "TrainResult",
    "W2SGConfig",
    "XentLoss",
    "accuracy",
    "accuracy_ci",
    "brier",
    "build_classifier",
    "ece",
    "get_loss",
    "label_quality",
    "label_source",
    "load_dataset",
    "load_sciq",
    "make_example",
    "pgr",
    "pgr_ci",
    "predict",
    "run_experiment",
    "split_by_question",
    "train",
    "with_labels",
]
