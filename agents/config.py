"""Model specs as pydantic configs, loadable from YAML with errors that name the file and field."""

from __future__ import annotations

import os
from collections.abc import Collection, Sequence
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal, TypeVar, get_args, get_origin

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    Tag,
    ValidationError,
    model_validator,
)

from agents.providers import PROVIDERS

OPTION_FIELDS = ("hf", "openai", "scripted", "extractive")  # ModelSpec sections a provider may own


class Config(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Price(Config):
    """US dollars per million tokens."""

    input_per_mtok: float = Field(0.0, ge=0)
    output_per_mtok: float = Field(0.0, ge=0)

    def cost(self, input_tokens: int, output_tokens: int) -> float:
        return (input_tokens * self.input_per_mtok + output_tokens * self.output_per_mtok) / 1e6


class CacheConfig(Config):
    """Record/replay cache. `record`: serve hits, store misses. `replay`: a miss is an error."""

    path: Path
    mode: Literal["record", "replay", "off"] = "record"


class RetryConfig(Config):
    max_attempts: int = Field(6, ge=1, description="attempts per call, the first included")
    initial_s: float = Field(0.5, gt=0, description="first backoff; doubles each retry, with jitter")
    max_wait_s: float = Field(30.0, gt=0, description="cap on one backoff and on a Retry-After hint")


class HFOptions(Config):
    device: Literal["auto", "cpu", "cuda", "mps"] = "auto"
    dtype: Literal["auto", "float32", "bfloat16", "float16"] = "auto"
    max_batch_size: int = Field(32, ge=1, description="rows per batched forward/generate")
    batch_wait_ms: float = Field(5.0, ge=0, description="how long a batch waits to fill up")
    chat_template: str | None = Field(None, description="Jinja template when the tokenizer has none")
    prefix_cache_tokens: int = Field(
        16384,
        ge=0,
        description="prompt tokens whose key/value states are kept (an LRU) so that later prompts "
        "starting with the same tokens skip recomputing them; memory per token is 2 x layers x "
        "kv_heads x head_dim x dtype bytes (SmolLM2-135M fp32: 45 KiB); 0 turns reuse off",
    )

    # How a model is run, not what it answers (w2sg.identity): run ids stay those of the runs made
    # before the field; spec_identity leaves it out through HOW_FIELDS.
    ID_EXCLUDE: ClassVar[dict[str, Any]] = {"prefix_cache_tokens": True}


ChoiceMethodOption = Literal["auto", "logprobs", "echo", "completion_logprobs", "systemone", "sampled"]


class OpenAIOptions(Config):
    model: str | None = Field(
        None,
        description="the model id the server serves (`w2sg models list URL` prints them), read "
        "plainly: slashes, paths and '@' included; set, the name after `openai/` is only a label",
    )
    base_urls: list[str] = Field(
        default_factory=list, description="one or more OpenAI-compatible endpoints; load is spread"
    )
    api_key_env: str = Field("OPENAI_API_KEY", description="name of the env var holding the key")
    timeout_s: float = Field(60.0, gt=0, description="per request, plus timeout_per_token_s per max_tokens")
    timeout_per_token_s: float = Field(
        0.5, ge=0, description="added to timeout_s for each token a request may generate"
    )
    top_logprobs: int = Field(20, ge=1, le=20)
    max_tokens_field: Literal["max_tokens", "max_completion_tokens"] = "max_tokens"
    choice_method: ChoiceMethodOption = Field(
        "auto",
        description="how choice_probs scores: logprobs (chat top-logprobs of the first token), echo "
        "(/v1/completions prompt logprobs of each choice appended), completion_logprobs (top-logprobs of "
        "a one-token /v1/completions), systemone (transformers serve's label logits after the prompt and "
        "its 'Answer Yes or No only.'), sampled (choice frequency over sampled replies); auto: the "
        "first of these the server supports, in that order (the completions ones need chat_template)",
    )
    chat_template: Path | None = Field(
        None,
        description="for echo and completion_logprobs: the model's chat template, a Jinja file or a "
        "model folder (chat_template.jinja or tokenizer_config.json), rendered here because "
        "/v1/completions takes raw text",
    )
    choice_probs_fallback: Literal["sample", "error"] = Field(
        "sample", description="auto: what to do when the server gives no logprobs by any method"
    )
    fallback_samples: int = Field(16, ge=1, description="samples per call for the sampled method")
    fallback_max_tokens: int = Field(
        16, ge=1, description="tokens per sampled reply: the first choice word anywhere in it counts"
    )


class ScriptedRule(Config):
    """First rule whose `match` (a regex, searched in the last user message) fits answers the call."""

    match: str = ".*"
    reply: str | None = None
    replies: list[str] | None = Field(None, description="one is picked per call from a seeded RNG")
    probs: dict[str, float] | None = Field(None, description="choice probabilities for choice_probs")

    @model_validator(mode="after")
    def _has_answer(self) -> ScriptedRule:
        if self.reply is None and not self.replies and self.probs is None:
            raise ValueError("a scripted rule needs `reply`, `replies` or `probs`")
        return self


class ScriptedOptions(Config):
    rules: list[ScriptedRule] = Field(default_factory=list)
    table: Path | None = Field(None, description="JSONL of recorded {prompt, reply[, probs]} rows")
    default_reply: str = "OK"
    latency_s: float = Field(0.0, ge=0, description="simulated backend latency per call")


class ExtractiveOptions(Config):
    """Where the `extractive` reader finds its fields in a prompt (regexes, group 1, multiline).
    The defaults match the default debate, consultancy and interaction templates."""

    question_pattern: str = r"Question: (.*)$"
    answer_pattern: str = r"Proposed answer: (.*)$"
    # The passage runs to the next section of the default templates, so one of several paragraphs
    # (QuALITY-style passages) is all read.
    passage_pattern: str = (
        r"passage[^:\n]*: ((?:.|\n(?!Debate so far:|Conversation so far:|Answers so far:|In at most "
        r"|The judge asks:|\[… passage truncated\]))*)"
    )
    side_pattern: str = Field(
        r"(?:argue|judge) that the proposed answer is (correct|incorrect)\b",
        description="the side to argue; no match: an assistant, which states its own stance",
    )
    word_limit_pattern: str = r"at most (\d+) words"
    assistant_quotes: int = Field(2, ge=1, description="sentences an assistant quotes")
    # Graded debaters (issue 20): each draw is seeded by the call's seed (per question, side and
    # round in a debate), so a run is reproducible. Unset is 1.0: the plain reader, drawing nothing.
    recall: float | None = Field(
        None,
        ge=0,
        le=1,
        description="the chance it reads each sentence of the passage (missed ones "
        "cannot be quoted); 1: it reads them all",
    )
    skill: float | None = Field(
        None,
        ge=0,
        le=1,
        description="the chance it quotes the best sentence it read for its side, "
        "else one drawn at random from those it read",
    )
    honesty: float | None = Field(
        None,
        ge=0,
        le=1,
        description="the chance a quote is real; otherwise it makes one up for its "
        "side, which the quote check marks unverified",
    )
    judge: bool | None = Field(
        None,
        description="in choice_probs, weigh the quotes of a debate transcript (the offline "
        "quote-weighing judge); unset: it cannot judge",
    )


class ModelSpec(Config):
    """One model. `name` picks the backend by prefix: hf/<dir or hub id>, embedded/<smollm2|tiny-gpt2>,
    openai/<model>[@<base_url>], scripted[/<label>], classifier/<dir>, extractive[/<label>]."""

    name: str
    max_concurrency: int | None = Field(
        None, ge=1, description="calls in flight at once; default: the backend's (hf: 2 batches, API: 32)"
    )
    adaptive_concurrency: bool = Field(
        True,
        description="halve the calls in flight on a timeout, 429 or 503 and grow back by one per "
        "`limit` successes (never above max_concurrency); false: always max_concurrency",
    )
    rpm: float | None = Field(None, gt=0, description="requests per minute limit")
    tpm: float | None = Field(None, gt=0, description="tokens per minute limit (prompt + completion)")
    retry: RetryConfig = Field(default_factory=RetryConfig)
    cache: CacheConfig | None = None
    price: Price | None = None
    hf: HFOptions | None = None
    openai: OpenAIOptions | None = None
    scripted: ScriptedOptions | None = None
    extractive: ExtractiveOptions | None = None

    @property
    def provider(self) -> str:
        return self.name.split("/", 1)[0]

    @model_validator(mode="after")
    def _provider_options(self) -> ModelSpec:
        known = PROVIDERS.get(self.provider)
        if known is None:
            raise ValueError(
                f"unknown provider {self.provider!r} in model name {self.name!r}; "
                f"expected one of {', '.join(PROVIDERS)} (e.g. hf/gpt2, openai/gpt-4o-mini)"
            )
        for field in OPTION_FIELDS:
            if getattr(self, field) is not None and field != known.options:
                raise ValueError(f"options `{field}` do not apply to a {self.provider} model ({self.name})")
        return self


def ref_kind(value: Any) -> str | None:
    if isinstance(value, str):
        return "name"
    return "spec" if isinstance(value, dict | BaseModel) else None


#: A model where a config names one: a model string, a key of the config's `models:`, or an
#: inline spec (`{name: openai/x, openai: {timeout_s: 300}, retry: {...}}`). Tagged, so an error
#: in an inline spec reads `graph.judge.openai.timeout_s`, not both union members.
ModelRef = Annotated[
    Annotated[str, Tag("name")] | Annotated[ModelSpec, Tag("spec")],
    Discriminator(
        ref_kind,
        custom_error_type="model_ref",
        custom_error_message="a model string, a key of `models:`, or a model spec ({name: ..., ...})",
    ),
]

#: What only says how a model is called (not what it answers): a store keeps its labels when these
#: change (a run resumed with more retries, a longer timeout, another server of the same model).
HOW_FIELDS: dict[str, Any] = {
    **dict.fromkeys(
        ["cache", "retry", "max_concurrency", "adaptive_concurrency", "rpm", "tpm", "price"], True
    ),
    "openai": {"base_urls", "api_key_env", "timeout_s", "timeout_per_token_s", "max_tokens_field"},
    "hf": {"prefix_cache_tokens"},  # reuse changes no output beyond float rounding (docs/models.md)
}


def resolve_spec(ref: ModelRef, models: dict[str, ModelSpec] | None = None) -> ModelSpec:
    """The spec a reference means: an inline spec, the `models:` entry of that name, or a plain
    model string with default settings."""
    if isinstance(ref, ModelSpec):
        return ref
    return (models or {}).get(ref) or ModelSpec(name=ref)


def spec_identity(spec: ModelSpec) -> dict[str, Any]:
    """What of a spec changes its answers: everything but `HOW_FIELDS` (and unset sections)."""
    return spec.model_dump(mode="json", exclude=HOW_FIELDS, exclude_none=True)


class ModelsConfig(Config):
    """A file of named models; experiment configs of later stages embed the same mapping."""

    models: dict[str, ModelSpec]


C = TypeVar("C", bound=BaseModel)


class ConfigError(ValueError):
    """A config file could not be read; the message names the file and the field."""


class _UniqueKeys(yaml.SafeLoader):
    """YAML's safe loader, refusing a key written twice in one mapping (PyYAML keeps the last one
    silently, so a pasted second `concurrency:` would quietly win). A merge (`<<: *base`) may
    still be overridden."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[Any] = set()
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue
            key = self.construct_object(key_node, deep=deep)
            if isinstance(key, list | dict | set):
                continue  # unhashable: the base class refuses it with its own message
            if key in seen:
                problem = f"found key {key!r} twice"
                raise yaml.constructor.ConstructorError(
                    "while reading a mapping", node.start_mark, problem, key_node.start_mark
                )
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


def load_yaml(text: str) -> Any:
    """YAML text as Python data (safe: no objects constructed), refusing duplicate keys."""
    return yaml.load(text, Loader=_UniqueKeys)  # a SafeLoader: no objects constructed


def format_validation_error(
    err: ValidationError, source: str, cls: type[BaseModel], what: str = "config"
) -> str:
    """One line per problem, `<dotted field>: <message>`; an unknown key lists the fields allowed
    there."""
    lines = [f"{source}: invalid {what}"]
    for e in err.errors():
        shown, holder = _walk(cls, [str(p) for p in e["loc"]])
        allowed = sorted(holder.model_fields) if e["type"] == "extra_forbidden" and holder else None
        hint = f" (allowed here: {', '.join(allowed)})" if allowed else ""
        lines.append(f"  {'.'.join(shown) or '<root>'}: {e['msg']}{hint}")
    return "\n".join(lines)


def load_config(
    path: str | Path, cls: type[C], *, only: Collection[str] | None = None, overrides: Sequence[str] = ()
) -> C:
    """Read YAML at `path` into `cls`; every error names the file and the offending field.

    `only`: keep just these top-level keys and ignore the rest (e.g. `models` for `w2sg models
    check`, which reads the `models:` section of any config).

    A relative `Path` written in the file (`store:`, `out_dir:`, `cache: {path: ...}`, ...) is
    taken relative to the config file's folder, so a config means the same wherever it is run
    from. Defaults (fields the file does not write) stay relative to the working directory, and
    model names are strings, never rebased (`hf/<dir>`, `classifier/<dir>`, a w2sg model `path`
    are read against the working directory).

    `overrides`: `key.path=value` strings (the CLI's `--set`), each value read as YAML, applied
    after the file, validated by the same models; a bad one is named with the fields allowed there.
    A path given this way is relative to the working directory, like any command-line path."""
    path = Path(path)
    try:
        raw = load_yaml(path.read_text())
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such config file") from None
    except IsADirectoryError:
        raise ConfigError(f"{path}: is a directory, not a config file") from None
    except yaml.YAMLError as e:
        raise ConfigError(f"{path}: not valid YAML: {e}") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: expected a mapping at the top level, got {type(raw).__name__}")
    if only is not None:
        raw = {k: v for k, v in raw.items() if k in only}
    try:
        cfg = cls.model_validate(raw)
    except ValidationError as e:
        raise ConfigError(format_validation_error(e, str(path), cls)) from None
    rebase_paths(cfg, path.parent)
    if overrides:
        cfg = apply_overrides(cfg, overrides, str(path))
    return cfg


def apply_overrides(cfg: C, overrides: Sequence[str], source: str) -> C:
    """`cfg` with each `key.path=value` set (value parsed as YAML), validated again by its model."""
    data = cfg.model_dump(mode="json", exclude_unset=True)
    keys = []
    for item in overrides:
        key, sep, text = item.partition("=")
        parts = key.strip().split(".")
        if not sep or not all(parts):
            raise ConfigError(f"--set {item!r}: expected key.path=value, e.g. --set sizes.weak=300")
        node, model = data, cfg
        for i, part in enumerate(parts[:-1]):
            # A section still at its default starts from that default (`--set dataset.path=...` on a
            # config that does not write `dataset:` keeps the default's other fields).
            current = getattr(model, part, None) if isinstance(model, BaseModel) else None
            if part not in node and isinstance(current, BaseModel):
                node[part] = current.model_dump(mode="json", exclude_unset=True)
            model = current
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                raise ConfigError(f"--set {key}: {'.'.join(parts[: i + 1])} is a value, not a section")
            node = child
        try:
            node[parts[-1]] = load_yaml(text) if text.strip() else ""
        except yaml.YAMLError as e:
            raise ConfigError(f"--set {key}: {text!r} is not a YAML value ({e})") from None
        keys.append(parts)
    try:
        return type(cfg).model_validate(data)
    except ValidationError as e:
        raise ConfigError(format_validation_error(e, source, type(cfg), "--set")) from None


def _walk(cls: type[BaseModel], loc: Sequence[str]) -> tuple[list[str], type[BaseModel] | None]:
    """An error location as the user wrote it (the tag pydantic inserts for a tagged union is
    dropped: `protocols.debate.<tag>.rounds` reads `protocols.debate.rounds`), and the model whose
    key the last part is (None when it is not one)."""
    shown: list[str] = []
    ann: Any = cls
    holder: Any = None
    for i, part in enumerate(loc):
        holder = ann
        ann, tag = _step(ann, part)
        if ann is None:  # an unknown key, or a key under a plain value
            return [*shown, *loc[i:]], (_model_of(holder) if i == len(loc) - 1 else None)
        if not tag:
            shown.append(part)
    return shown, _model_of(holder)


def _step(ann: Any, part: str) -> tuple[Any, bool]:
    """The annotation one key below `ann`, and whether `part` was a tagged union's tag."""
    if get_origin(ann) is Annotated:
        return _step(get_args(ann)[0], part)
    if isinstance(ann, type) and issubclass(ann, BaseModel):
        field = ann.model_fields.get(part)
        return (field.annotation if field else None), False
    origin, args = get_origin(ann), get_args(ann)
    if origin is dict:
        return args[1], False
    if origin in (list, tuple):
        return args[0], False
    members = [a for a in args if a is not type(None)]
    for a in members:  # a tagged union: `part` names the member
        if get_origin(a) is Annotated and any(getattr(m, "tag", None) == part for m in a.__metadata__):
            return get_args(a)[0], True
    for a in members:
        found, tag = _step(a, part)
        if found is not None:
            return found, tag
    return None, False


def _model_of(annotation: Any) -> Any:
    """The BaseModel an annotation holds (`X`, `X | None`, `dict[str, X]`), else None."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in getattr(annotation, "__args__", ()) or ():
        found = _model_of(arg)
        if found is not None:
            return found
    return None


def rebase_paths(cfg: BaseModel, base: Path) -> None:
    """In place: every relative `Path` value of a field set on `cfg` or its nested models (through
    dicts, lists and tuples) becomes `base / value`, normalised (`configs/../runs` → `runs`)."""
    seen: set[int] = set()

    def rebase(value: Any) -> Any:
        if isinstance(value, Path):
            return value if value.is_absolute() else Path(os.path.normpath(base / value))
        if isinstance(value, BaseModel):
            visit(value)
        elif isinstance(value, dict):
            return {k: rebase(v) for k, v in value.items()}
        elif isinstance(value, list | tuple):
            return type(value)(rebase(v) for v in value)
        return value

    def visit(model: BaseModel) -> None:
        if id(model) in seen:  # one object reachable twice must not be rebased twice
            return
        seen.add(id(model))
        for name in model.model_fields_set:
            if name in type(model).model_fields:
                # __dict__: no validate-on-assignment, and fine on frozen models too.
                model.__dict__[name] = rebase(getattr(model, name))

    visit(cfg)
