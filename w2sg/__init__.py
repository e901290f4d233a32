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
from w2sg.ensembles import EnsembleConfig, EnsembleResult, bagging, boosting, run_ensemble
from w2sg.experiment import ExperimentResult, Sizes, W2SGConfig, run_experiment
from w2sg.icl import SELECTORS, ICLConfig, build_messages, select_demos
from w2sg.icl_experiment import ICLResult, run_icl
from w2sg.losses import LOSSES, LogConfLoss, Loss, ProductLoss, XentLoss, get_loss
from w2sg.metrics import Estimate, LabelQuality, accuracy, accuracy_ci, brier, ece, label_quality, pgr, pgr_ci
from w2sg.models import LoraConfig, ModelConfig, build_classifier
from w2sg.train import TrainConfig, TrainResult, predict, train

__all__ = [
    "LOSSES",
    "SELECTORS",
    "DataError",
    "EnsembleConfig",
    "EnsembleResult",
    "Estimate",
    "Example",
    "ExperimentResult",
    "ICLConfig",
    "ICLResult",
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
    "bagging",
    "boosting",
    "brier",
    "build_classifier",
    "build_messages",
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
    "run_ensemble",
    "run_experiment",
    "run_icl",
    "select_demos",
    "split_by_question",
    "train",
    "with_labels",
]
