"""Debate, consultancy, blind-judge and N-agent graphs as LangGraph state machines.

Each node makes at most one model call and returns a partial state update; routers are
`route_*`; all edges are set in `build_debate_graph`. Simultaneous speakers run in one LangGraph
superstep, so each sees the state from before the round (not the other's turn of that round);
sequential speakers are chained, so the second sees the first's turn.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Callable, Mapping, Sequence
from typing import Any, NamedTuple

from langgraph.graph import END, START, StateGraph

from agents.backends.classifier import PAIR_SEP
from agents.model import Model
from agents.types import ChoiceProbs, Completion
from graphs.batch import ROW_ERRORS, BatchGraph
from graphs.bestofn import optimise_turn
from graphs.config import DebaterSpec, DebateSettings
from graphs.quotes import check_quotes
from graphs.render import judge_prompt, speaker_prompt, transcript_for_judge
from graphs.spec import Item
from graphs.types import SIDES, DebateState, Side, Turn, Verdict

Node = Callable[[DebateState], Any]
JUDGE_CHOICES = ["Yes", "No"]


def call_seed(seed: int, *parts: object) -> int:
    """A per-call seed from the config seed and what the call is about, independent of timing."""
    blob = "|".join(map(str, (seed, *parts)))
    return int(hashlib.sha256(blob.encode()).hexdigest()[:8], 16)


def _turn(cfg: DebateSettings, state: DebateState, completion: Any, **fields: Any) -> Turn:
    text = completion.text.strip()
    # Against the passage as the speaker was shown it: a quote from beyond a cut is unverified.
    # (A speaker shown none is checked against the whole: no prompt budget applies.)
    context = state.get("context", "")
    shown = cfg.passage(context) if cfg.debaters_see_context else context
    quotes = check_quotes(text, shown) if cfg.verify_quotes else ()
    return Turn(
        round=state.get("round", 1),
        text=text,
        tokens=completion.usage.output_tokens,
        input_tokens=completion.usage.input_tokens,
        seconds=completion.seconds,
        cost_usd=completion.cost_usd,  # its own model's price (per-side debaters may differ)
        quotes=quotes,
        **fields,
    )


class Speaker(NamedTuple):
    """Who argues one side: the model, how it speaks, and (optimised) whose p(side) picks its turns."""

    model: Model
    spec: DebaterSpec
    preference: Model | None = None
    preference_is_judge: bool = True


def speaker_node(
    cfg: DebateSettings, who: Speaker, template: str, speaker: str, side: Side | None = None
) -> Node:
    model, spec = who.model, who.spec
    if spec.optimised:
        return optimised_speaker_node(cfg, who, template, speaker, side)

    async def node(state: DebateState) -> dict[str, Any]:
        prompt = speaker_prompt(cfg, template, dict(state), side=side, name=speaker)
        c = await model.generate(
            [{"role": "user", "content": prompt}],
            max_tokens=cfg.max_tokens,
            temperature=cfg.temperature,
            seed=call_seed(cfg.seed, state["question"], state["answer"], speaker, state.get("round", 1)),
        )
        return {"transcript": [_turn(cfg, state, c, speaker=speaker, side=side)]}

    return node


def optimised_speaker_node(
    cfg: DebateSettings, who: Speaker, template: str, speaker: str, side: Side | None
) -> Node:
    """A best-of-N / critique-and-refine speaker (`graphs.bestofn`): each candidate is rated by the
    preference model reading the judge's prompt with the candidate as this speaker's turn."""
    if side is None or who.preference is None:
        raise ValueError(f"{speaker}: best_of_n / critique need a side and a preference model")
    model, preference = who.model, who.preference
    # The judge reads its own prompt; another classifier/<dir> reads the trained judge's text pair.
    trained = (
        cfg.judge_kind == "trained" if who.preference_is_judge else preference.spec.provider == "classifier"
    )
    view = cfg.model_copy(update={"judge_kind": "trained" if trained else "prompted"})

    async def node(state: DebateState) -> dict[str, Any]:
        prompt = speaker_prompt(cfg, template, dict(state), side=side, name=speaker)

        async def sample(text: str, seed: int, temperature: float) -> Completion:
            msgs = [{"role": "user", "content": text}]
            return await model.generate(msgs, max_tokens=cfg.max_tokens, temperature=temperature, seed=seed)

        async def score(text: str) -> tuple[float, ChoiceProbs]:
            turn = _turn(cfg, state, Completion(text=text), speaker=speaker, side=side)
            shown = {**state, "transcript": [*state.get("transcript", []), turn]}
            p = await preference.choice_probs(
                [{"role": "user", "content": judge_prompt(view, shown, SIDES, pair_sep=PAIR_SEP)}],
                JUDGE_CHOICES,
            )
            return float(p.probs["Yes" if side == "correct" else "No"]), p

        seed = call_seed(cfg.seed, state["question"], state["answer"], speaker, state.get("round", 1))
        best = await optimise_turn(who.spec, side, prompt, seed, sample, score)
        spent = best.spent
        turn = _turn(cfg, state, Completion(text=best.text), speaker=speaker, side=side)
        update = {
            "tokens": spent.output_tokens,
            "input_tokens": spent.input_tokens,
            "seconds": spent.seconds,
            "cost_usd": spent.cost_usd,
            "scores": tuple(best.scores),
        }
        return {"transcript": [turn.model_copy(update=update)]}

    return node


def consultant_node(cfg: DebateSettings, who: Mapping[Side, Speaker]) -> Node:
    inner = {s: speaker_node(cfg, who[s], cfg.prompts.consultant, "consultant", s) for s in SIDES}

    async def node(state: DebateState) -> dict[str, Any]:
        return await inner[state["consultant_side"]](state)

    return node


def assign_side(cfg: DebateSettings) -> Node:
    """Consultancy: the consultant's side, fixed by config or drawn with a per-question seed."""

    async def node(state: DebateState) -> dict[str, Any]:
        if cfg.consultant_side != "random":
            return {"consultant_side": cfg.consultant_side}
        rng = random.Random(call_seed(cfg.seed, state["question"], state["answer"], "consultant_side"))
        return {"consultant_side": rng.choice(SIDES)}

    return node


def judge_question_node(cfg: DebateSettings, model: Model) -> Node:
    """The interactive judge asks one question; the speakers see it in the next round."""

    async def node(state: DebateState) -> dict[str, Any]:
        prompt = cfg.prompts.judge_question.format(
            question=state["question"],
            answer=state["answer"],
            transcript=transcript_for_judge(state.get("transcript", []), tag=cfg.verify_quotes),
        )
        c = await model.generate(
            [{"role": "user", "content": prompt}],
            max_tokens=cfg.max_tokens,
            temperature=cfg.temperature,
            seed=call_seed(cfg.seed, state["question"], state["answer"], "judge", state.get("round", 1)),
        )
        # Asked before the round it is about; it carries that round's number.
        turn = Turn(
            speaker="judge",
            round=state.get("round", 1),
            kind="question",
            text=c.text.strip(),
            tokens=c.usage.output_tokens,
            input_tokens=c.usage.input_tokens,
            seconds=c.seconds,
        )
        return {"transcript": [turn]}

    return node


def judge_node(cfg: DebateSettings, model: Model, order: Sequence[Side]) -> Node:
    async def node(state: DebateState) -> dict[str, Any]:
        prompt = judge_prompt(cfg, dict(state), order, pair_sep=PAIR_SEP)
        p = await model.choice_probs([{"role": "user", "content": prompt}], JUDGE_CHOICES)
        tokens = p.usage.input_tokens + p.usage.output_tokens
        return {"judge_runs": [(float(p.probs["Yes"]), p.method, tokens, p.seconds)]}

    return node


def verdict_node(judge_name: str) -> Node:
    async def node(state: DebateState) -> dict[str, Any]:
        runs = state.get("judge_runs", [])
        verdict = Verdict.of(
            state.get("transcript", []),
            [r[0] for r in runs],
            judge=judge_name,
            method=runs[0][1],
            tokens=sum(r[2] for r in runs),
            seconds=sum(r[3] for r in runs),
        )
        return {"verdict": verdict}

    return node


async def end_round(state: DebateState) -> dict[str, Any]:
    return {"round": state.get("round", 1) + 1}


def build_debate_graph(
    cfg: DebateSettings,
    *,
    debater: Model | None = None,
    judge: Model,
    others: Mapping[str, Model] | None = None,
    checkpointer: Any = None,
    batched: bool = False,
) -> Any:
    """The compiled graph for `cfg.protocol`. Invoke with {"question", "answer", "context"}; the
    final state holds `transcript` (list of Turn) and `verdict` (Verdict). `batched`: the same
    graph over {"rows": [...]} (graphs.batch), several questions per run. `others`: models of the
    roles beyond debater and judge (`DebateSettings.roles`: per-side debaters, preference models)."""
    models = {"judge": judge, **(others or {})} | ({"debater": debater} if debater is not None else {})

    def speaker(side: Side | None) -> Speaker:
        role, pref = cfg.side_roles(side)
        if role not in models:
            raise ValueError(f"protocol {cfg.protocol!r} needs a {role} model")
        spec = cfg.debater_spec(side)
        if spec.optimised and pref not in models:
            raise ValueError(f"the {role}'s best_of_n / critique need a {pref} model")
        return Speaker(models[role], spec, models.get(pref), pref == "judge")

    if cfg.position_swap and cfg.protocol not in ("simultaneous", "sequential"):
        raise ValueError("position_swap applies to two-sided debate (simultaneous or sequential)")
    g = BatchGraph(DebateState) if batched else StateGraph(DebateState)
    p = cfg.prompts
    first: Side = cfg.first
    second: Side = "incorrect" if first == "correct" else "correct"

    # Speakers of one round, and the node each round starts with.
    if cfg.protocol in ("simultaneous", "sequential"):
        for side in SIDES:
            g.add_node(
                f"debater_{side}", speaker_node(cfg, speaker(side), p.debater, f"debater_{side}", side)
            )
        speakers = [f"debater_{first}", f"debater_{second}"]
    elif cfg.protocol == "consultancy":
        g.add_node("assign_side", assign_side(cfg))
        g.add_node("consultant", consultant_node(cfg, {s: speaker(s) for s in SIDES}))
        speakers = ["consultant"]
    elif cfg.protocol == "n_agent":
        speakers = [f"agent_{i + 1}" for i in range(cfg.n_agents)]
        for name in speakers:
            g.add_node(name, speaker_node(cfg, speaker(None), p.agent, name))
    else:
        speakers = []

    orders: list[tuple[Side, Side]] = [("correct", "incorrect")]
    if cfg.position_swap:
        orders.append(("incorrect", "correct"))
    judges = [f"judge_{'_'.join(o)}" if cfg.position_swap else "judge" for o in orders]
    for name, order in zip(judges, orders, strict=True):
        g.add_node(name, judge_node(cfg, judge, order))
    g.add_node("verdict", verdict_node(judge.name))
    for name in judges:
        g.add_edge(name, "verdict")
    g.add_edge("verdict", END)

    if not speakers:  # blind judge: question and answer only
        for name in judges:
            g.add_edge(START, name)
        return g.compile(checkpointer=checkpointer)

    g.add_node("end_round", end_round)
    parallel = cfg.protocol in ("simultaneous", "n_agent")
    round_start = speakers if parallel else [speakers[0]]
    if cfg.protocol == "sequential":
        g.add_edge(speakers[0], speakers[1])
    # Parallel speakers finish in the same superstep, so end_round then runs once per round.
    for s in speakers if parallel else [speakers[-1]]:
        g.add_edge(s, "end_round")

    def route_round(state: DebateState) -> list[str]:
        if state.get("round", 1) > cfg.rounds:
            return judges
        if cfg.interactive_judge and state.get("round", 1) > 1:
            return ["judge_question"]
        return round_start

    targets = [*judges, *round_start]
    if cfg.interactive_judge:
        g.add_node("judge_question", judge_question_node(cfg, judge))
        for s in round_start:
            g.add_edge("judge_question", s)
        targets.append("judge_question")
    g.add_conditional_edges("end_round", route_round, targets)
    # Round 1 always starts with the speakers (rounds >= 1; no judge question before round 1).
    entry = START
    if cfg.protocol == "consultancy":
        g.add_edge(START, "assign_side")
        entry = "assign_side"
    for s in round_start:
        g.add_edge(entry, s)
    return g.compile(checkpointer=checkpointer)


async def run_debate(
    graph: Any, question: str, answer: str, context: str = "", *, thread_id: str | None = None
) -> DebateState:
    """One debate to its verdict. With a checkpointer and a thread_id, a finished thread is
    returned as it is and an interrupted one resumes where it stopped (never restarts on top)."""
    return await invoke_once(graph, debate_input(question, answer, context), thread_id)


def debate_input(question: str, answer: str, context: str = "") -> dict[str, Any]:
    """A debate's start state (one row of a batched graph's input)."""
    return {"question": question, "answer": answer, "context": context, "round": 1, "transcript": []}


async def invoke_recorded(graph: Any, state: dict[str, Any]) -> dict[str, Any]:
    """Run one row to its end; a failed call (`ROW_ERRORS`) comes back as "error" in the last state
    reached, so what was said before it is kept (a judge that fails after a whole debate leaves
    its transcript; the batched graph keeps each row's the same way)."""
    last: dict[str, Any] = dict(state)
    try:
        async for values in graph.astream(state, stream_mode="values"):
            last = values
    except ROW_ERRORS as err:
        return {**last, "error": f"{type(err).__name__}: {err}"}
    return last


async def invoke_once(graph: Any, state: dict[str, Any], thread_id: str | None) -> Any:
    if thread_id is None:
        return await graph.ainvoke(state)
    config = {"configurable": {"thread_id": thread_id}}
    saved = await graph.aget_state(config)
    if saved.values:
        return await graph.ainvoke(None, config=config) if saved.next else saved.values
    return await graph.ainvoke(state, config=config)


class DebateConfig(DebateSettings):
    """The debate kind's spec (`graphs.spec.GraphSpec`): its settings and how its graph is built."""

    def build(self, models: Mapping[str, Model], *, batched: bool = False, checkpointer: Any = None) -> Any:
        others = {role: models[role] for role in self.roles() if role not in ("debater", "judge")}
        return build_debate_graph(
            self,
            debater=models.get("debater"),
            judge=models["judge"],
            others=others,
            batched=batched,
            checkpointer=checkpointer,
        )

    def start(self, item: Item) -> dict[str, Any]:
        return debate_input(item.question, item.answer, item.support or "")

    def judge_texts(self, state: DebateState, pair_sep: str) -> list[tuple[str, str]]:
        # With position swap on, the judge reads both presentation orders: both are inputs.
        orders = [("correct", "incorrect"), ("incorrect", "correct")][: 2 if self.position_swap else 1]
        trained = self.model_copy(update={"judge_kind": "trained"})
        return [(order[0], judge_prompt(trained, dict(state), order, pair_sep=pair_sep)) for order in orders]
