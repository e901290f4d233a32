"""`GraphSpec`: everything a caller needs to know of one protocol kind, in one place.

A kind (debate, interaction, ...) is a config class deriving from `GraphSpec`, in its own module,
and one line of `graphs.kinds.KINDS`. Labelling, judge training and the end-to-end run talk only
to this interface: which model each role calls, how to build the graph, a row's start state,
the copy with a trained judge, the text pair a trained judge reads, the protocol name labels are
stored under. Nothing outside a kind's module asks which kind it is.

The members every kind must give are abstract (`build`, `start`, `judge_texts`,
`passage_settings`, and the class variables `ROLE_FIELDS`, `SPEAKER`, `JUDGE`): a kind that
leaves one out is a TypeError when its class is created, at import, not at its first run.
"""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, ClassVar, Literal, Protocol

from pydantic import Field

from agents.config import Config, ModelRef, ModelSpec, resolve_spec
from graphs.passage import OnLong, fit, shown

if TYPE_CHECKING:
    from typing import Self

    from agents.model import Model
    from graphs.types import GraphState


class Item(Protocol):
    """A row to judge: what `GraphSpec.start` reads (`w2sg.data.Example` is one)."""

    question: str
    answer: str
    support: str | None
    label: float


class GraphSpec(Config):
    kind: str
    judge_kind: Literal["prompted", "trained", "human"] = Field(
        "prompted",
        description="prompted: the judge LLM answers Yes/No; trained: a classifier reads "
        "question + answer, then what the protocol showed it, as a text pair; human (debate): a "
        "person judges, through `w2sg label` + `w2sg web` or `w2sg human answer`",
    )
    seed: int = 0
    max_context_tokens: int | None = Field(
        None,
        ge=1,
        description="the privileged passage's budget in a prompt, in tokens counted without a "
        "tokenizer as ceil(characters / 4) (so 4 characters a token); None: no limit",
    )
    on_long_context: OnLong = Field(
        "truncate",
        description="a passage over max_context_tokens: truncate keeps its beginning, cut at the last "
        "sentence end that fits, marked '[… passage truncated]' (quotes are checked against the cut "
        "passage); error fails the row with the passage's length and the budget",
    )

    #: role → the config field naming its model. The keys are the roles `build` takes.
    ROLE_FIELDS: ClassVar[dict[str, str]]
    #: the role that argues or informs (sees the passage), and the role that gives the verdict
    #: (the one a trained judge replaces).
    SPEAKER: ClassVar[str]
    JUDGE: ClassVar[str]

    #: what each kind must define: the abstract methods, and these class variables.
    REQUIRED_CLASS_VARS: ClassVar[tuple[str, ...]] = ("ROLE_FIELDS", "SPEAKER", "JUDGE")

    @classmethod
    def __pydantic_init_subclass__(cls, **kwargs: Any) -> None:
        super().__pydantic_init_subclass__(**kwargs)
        missing = sorted(getattr(cls, "__abstractmethods__", ()))
        missing += [v for v in cls.REQUIRED_CLASS_VARS if not hasattr(cls, v)]
        if missing:
            raise TypeError(
                f"protocol kind {cls.__name__} does not define {', '.join(missing)} (graphs.spec)"
            )

    @property
    def protocol_name(self) -> str:
        """The name its labels are stored under."""
        return self.kind

    def roles(self) -> dict[str, ModelRef]:
        """role → model (a name or an inline spec), for the roles this config calls (a blind judge
        hears no debater; a simulated or human overseer is no model)."""
        return {role: getattr(self, field) for role, field in self.ROLE_FIELDS.items()}

    def specs(self, models: dict[str, ModelSpec] | None = None) -> dict[str, ModelSpec]:
        """role → the spec each role's model is built from (`models:` resolves names)."""
        return {role: resolve_spec(ref, models) for role, ref in self.roles().items()}

    def role_paths(self) -> dict[str, tuple[str, ModelRef]]:
        """role → (the dotted config path that names its model, the model)."""
        return {role: (self.ROLE_FIELDS[role], ref) for role, ref in self.roles().items()}

    def with_specs(self, models: dict[str, ModelSpec] | None = None) -> Self:
        """This config with every model it calls written in as its spec: what a later process
        (`w2sg web`, `w2sg human answer`) rebuilds the graph from, with no `models:` to read names in."""
        data = self.model_dump(mode="json")
        for path, ref in self.role_paths().values():
            *head, last = path.split(".")
            node = data
            for key in head:
                node = node[key]
            node[last] = resolve_spec(ref, models).model_dump(mode="json", exclude_none=True)
        return type(self).model_validate(data)

    def model_refs(self) -> dict[str, tuple[str, str]]:
        """field → (model name, "name"): what `agents.names.check_config_models` resolves (an
        inline spec is a `ModelSpec` there, checked as one)."""
        return {path: (ref, "name") for path, ref in self.role_paths().values() if isinstance(ref, str)}

    def model_names(self, where: str = "") -> dict[str, str]:
        """The model names this graph calls, by config path (`where` is the graph's own path);
        inline specs are validated as specs and not listed."""
        return {f"{where}{field}": name for field, (name, _) in self.model_refs().items()}

    @property
    def speakers_consult_judge(self) -> bool:
        """A speaker calls the judge's model before the verdict (a debater optimised against it)."""
        return False

    def identity_exclude(self) -> dict[str, Any]:
        """What a label's identity leaves out of this config's dump beyond its roles' own inline
        specs (pydantic's nested `exclude`): how models nested deeper are called."""
        return {}

    @property
    def judge_model(self) -> ModelRef | None:
        """The verdict's model, or None when no model gives it."""
        return self.roles().get(self.JUDGE)

    @property
    def speaker_model(self) -> ModelRef | None:
        return self.roles().get(self.SPEAKER)

    @property
    def lockstep(self) -> bool:
        """Every row takes the same route, so rows can run batched (`graphs.batch`)."""
        return True

    @property
    def asks(self) -> bool:
        """A person judging this graph may ask follow-up questions."""
        return False

    @property
    def chooses_sides(self) -> bool:
        """A speaker picks the side it argues (open sides): each label records its choice as a
        `choice` turn, for reports to score against gold (`oversight.labelling.open_sides`)."""
        return False

    @property
    def needs_person(self) -> bool:
        """A person gives the verdict: it waits in a queue (`w2sg human`), not in a labelling run."""
        return False

    @abstractmethod
    def passage_settings(self) -> list[str]:
        """The boolean settings, on in this config, that use a row's passage: show it to a role, or
        check quotes against it. Empty: the passage reaches no model, so the protocol is the same
        on data without passages, where `w2sg run` runs it. Otherwise rows need one (a kind
        decides which of its settings count)."""
        ...

    @property
    def needs_passage(self) -> bool:
        """Rows need a passage (`passage_settings`): without one this is not the protocol configured."""
        return bool(self.passage_settings())

    def passage(self, context: str) -> str:
        """The privileged passage within `max_context_tokens`, as quotes are checked against it
        (`graphs.passage.fit`; raises PassageTooLong, a ValueError, with `on_long_context: error`)."""
        return fit(context, self.max_context_tokens, self.on_long_context)

    def shown_passage(self, context: str) -> str:
        """The passage as a prompt shows it: `passage`, marked when it was cut."""
        return shown(context, self.max_context_tokens, self.on_long_context)

    def with_judge(self, model: str) -> Self:
        """This config with `model` (a `classifier/<dir>`) as its trained judge, validated again."""
        data = self.model_dump() | {self.ROLE_FIELDS[self.JUDGE]: model, "judge_kind": "trained"}
        return type(self).model_validate(data)

    @abstractmethod
    def build(self, models: Mapping[str, Model], *, batched: bool = False, checkpointer: Any = None) -> Any:
        """The compiled LangGraph; `models` by role (only the roles in `roles()` are read)."""
        ...

    @abstractmethod
    def start(self, item: Item) -> dict[str, Any]:
        """A row's start state, its support passage as the privileged context."""
        ...

    @abstractmethod
    def judge_texts(self, state: GraphState, pair_sep: str) -> list[tuple[str, str]]:
        """(id suffix, text) for each text a trained judge of this protocol reads for a finished
        `state` (question + answer, `pair_sep`, what it was shown): its training inputs."""
        ...
