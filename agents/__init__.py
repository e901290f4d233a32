"""Who talks: one async model protocol, backends behind it, one wrapper for retries, limits,
cache and accounting. Importing this package does not import torch or any backend."""

from agents.cache import ResponseCache
from agents.config import (
    CacheConfig,
    ConfigError,
    HFOptions,
    ModelsConfig,
    ModelSpec,
    OpenAIOptions,
    Price,
    RetryConfig,
    ScriptedOptions,
    ScriptedRule,
    load_config,
)
from agents.errors import (
    CacheMissError,
    FatalModelError,
    ModelError,
    NoChoiceProbsError,
    RetryableError,
)
from agents.model import Model, RetriesExhaustedError, UsageStats, closing_all
from agents.protocol import ModelAPI
from agents.providers import PROVIDERS, register_provider
from agents.registry import get_model, wrap
from agents.types import ChoiceProbs, Completion, GenerateParams, Message, Usage

__all__ = [
    "PROVIDERS",
    "CacheConfig",
    "CacheMissError",
    "ChoiceProbs",
    "Completion",
    "ConfigError",
    "FatalModelError",
    "GenerateParams",
    "HFOptions",
    "Message",
    "Model",
    "ModelAPI",
    "ModelError",
    "ModelSpec",
    "ModelsConfig",
    "NoChoiceProbsError",
    "OpenAIOptions",
    "Price",
    "ResponseCache",
    "RetriesExhaustedError",
    "RetryConfig",
    "RetryableError",
    "ScriptedOptions",
    "ScriptedRule",
    "Usage",
    "UsageStats",
    "closing_all",
    "get_model",
    "load_config",
    "register_provider",
    "wrap",
]
