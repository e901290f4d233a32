"""Optimised and per-side debaters (issue 20): best-of-N keeps the candidate the preference model
rates most persuasive for the debater's side, with distinct seeds and every call's cost in the
turn; critique-and-refine rounds; per-side debaters speak for their own side; old configs keep
their label identity."""

from __future__ import annotations

import asyncio
import itertools
import re
from collections.abc import Sequence
from pathlib import Path

import pytest
import yaml
from cli import w2sg
from pydantic import ValidationError

from agents import Model, wrap
from agents.backends.scripted import ScriptedBackend
from agents.cache import ResponseCache
from agents.types import GenerateParams, Message
from graphs.bestofn import candidate_seeds
from graphs.debate import DebateConfig, debate_input
from graphs.invoke import invoke_recorded
from oversight.labelling.label import LabelConfig
from oversight.labelling.provenance import label_cost
from oversight.labelling.store import LabelStore

Q, A = "What element is present in all organic molecules?", "carbon"
CONTEXT = "Organic molecules are built around chains of carbon atoms."
PRICE = {"input_per_mtok": 1.0, "output_per_mtok": 2.0}


class Speaker:
    """A debater whose candidate k reads `argument k` (k from its seed), so a test knows each
    candidate's score: the preference below rates `argument k` at p(Yes) = k / 100."""

    def __init__(self, name: str = "scripted/debater") -> None:
        self.seeds: list[int | None] = []
        self.backend = ScriptedBackend(name, reply_fn=self.reply)

    def reply(self, messages: Sequence[Message], params: GenerateParams) -> str:
        self.seeds.append(params.seed)
        prompt = messages[-1].content
        if "You are a critic" in prompt:
            return "Say argument 99."
        if "A critic's advice" in prompt:
            return "argument 99 (rewritten)"
        side = re.search(r"proposed answer is (correct|incorrect)", prompt).group(1)  # type: ignore[union-attr]
        return f"{side} argument {params.seed % 97 if params.seed is not None else 0}"


def preference_probs(messages: Sequence[Message], choices: Sequence[str]) -> dict[str, float]:
    """p(Yes) = k / 100 for the last `argument k` in the transcript the judge is shown."""
    found = re.findall(r"argument (\d+)", messages[-1].content)
    p = int(found[-1]) / 100 if found else 0.5
    return {"Yes": p, "No": 1 - p}


def models(cfg: DebateConfig, **priced: dict) -> tuple[dict[str, Model], dict[str, Speaker]]:
    """Real scripted backends for every role the config calls; a `preference*` or the judge
    scores with `preference_probs`."""
    speakers: dict[str, Speaker] = {}
    out: dict[str, Model] = {}
    for role in cfg.roles():
        if role.startswith("debater"):
            speakers[role] = Speaker(f"scripted/{role}")
            out[role] = wrap(speakers[role].backend, price=priced.get(role))
        else:
            backend = ScriptedBackend(f"scripted/{role}", probs_fn=preference_probs)
            out[role] = wrap(backend, price=priced.get(role))
    return out, speakers


def debate(cfg: DebateConfig, **priced: dict) -> tuple[dict, dict[str, Model], dict[str, Speaker]]:
    ms, speakers = models(cfg, **priced)
    state = asyncio.run(invoke_recorded(cfg.build(ms), debate_input(Q, A, CONTEXT)))
    assert "error" not in state, state.get("error")
    return state, ms, speakers


def turn(state: dict, side: str):
    return next(t for t in state["transcript"] if t.side == side)


def score(text: str) -> int:
    return int(re.search(r"argument (\d+)", text).group(1))  # type: ignore[union-attr]


def test_best_of_n_keeps_the_candidate_the_preference_rates_highest_for_its_side() -> None:
    n = 8
    cfg = DebateConfig(
        protocol="simultaneous",
        rounds=1,
        judge="scripted/judge",
        debater={"model": "scripted/debater", "best_of_n": n, "preference": "scripted/pref"},
    )
    state, ms, speakers = debate(cfg)
    seeds = speakers["debater"].seeds
    assert len(seeds) == 2 * n and len(set(seeds)) == 2 * n  # every candidate its own seed
    for side, pick in (("correct", max), ("incorrect", min)):  # p(No) = 1 - p(Yes) for `incorrect`
        t = turn(state, side)
        candidates = [s % 97 for s in seeds if s is not None]
        assert len(t.scores) == n
        assert score(t.text) in candidates
        side_seeds = candidate_seeds(_turn_seed(cfg, side), n)
        mine = [s % 97 for s in side_seeds]
        assert score(t.text) == pick(mine) and t.text.startswith(side)
        assert max(t.scores) == pytest.approx(
            score(t.text) / 100 if side == "correct" else 1 - score(t.text) / 100
        )
    assert ms["preference"].usage.calls == 2 * n  # one rating per candidate
    assert ms["judge"].usage.calls == 1  # the verdict only: the judge is not the preference here


def _turn_seed(cfg: DebateConfig, side: str) -> int:
    from graphs.invoke import call_seed

    return call_seed(cfg.seed, Q, A, f"debater_{side}", 1)


def test_the_cost_of_every_candidate_and_rating_is_in_the_turn_and_the_label() -> None:
    n = 4
    cfg = DebateConfig(
        protocol="sequential",
        rounds=1,
        judge="scripted/judge",
        debater={"model": "scripted/debater", "best_of_n": n, "preference": "scripted/pref"},
    )
    state, ms, _ = debate(cfg, debater=PRICE, preference=PRICE)
    turns = state["transcript"]
    deb, pref = ms["debater"].usage, ms["preference"].usage
    assert sum(t.tokens for t in turns) == deb.output_tokens + pref.output_tokens
    assert sum(t.input_tokens for t in turns) == deb.input_tokens + pref.input_tokens
    assert sum(t.cost_usd for t in turns) == pytest.approx(deb.cost_usd + pref.cost_usd)
    assert deb.cost_usd > 0 and pref.cost_usd > 0
    verdict = state["verdict"]
    judge = ms["judge"].usage
    assert verdict.tokens == deb.input_tokens + deb.output_tokens + pref.input_tokens + pref.output_tokens + (
        judge.input_tokens + judge.output_tokens
    )
    assert label_cost(state, ms, cfg) == pytest.approx(deb.cost_usd + pref.cost_usd)


def test_the_judge_is_the_default_preference() -> None:
    cfg = DebateConfig(
        protocol="consultancy",
        consultant_side="incorrect",
        rounds=1,
        judge="scripted/judge",
        debater={"model": "scripted/debater", "best_of_n": 3},
    )
    assert set(cfg.roles()) == {"debater", "judge"}
    state, ms, _ = debate(cfg)
    assert ms["judge"].usage.calls == 3 + 1  # three ratings, then the verdict
    (t,) = state["transcript"]
    assert (
        t.side == "incorrect"
        and len(t.scores) == 3
        and max(t.scores) == pytest.approx(1 - score(t.text) / 100)
    )


def test_critique_rounds_critique_rewrite_and_keep_the_better_turn() -> None:
    cfg = DebateConfig(
        protocol="consultancy",
        consultant_side="correct",
        rounds=1,
        judge="scripted/judge",
        debater={"model": "scripted/debater", "best_of_n": 2, "critique": 2},
    )
    state, ms, speakers = debate(cfg)
    prompts = [m[-1].content for kind, m in speakers["debater"].backend.calls]
    assert sum("You are a critic" in p for p in prompts) == 2
    assert sum("A critic's advice" in p for p in prompts) == 2
    (t,) = state["transcript"]
    assert len(t.scores) == 2 + 2 and t.text == "argument 99 (rewritten)"  # p 0.99 beats both drafts
    assert ms["judge"].usage.calls == 4 + 1


def test_per_side_debaters_speak_for_their_own_side() -> None:
    cfg = DebateConfig.model_validate(
        {
            "protocol": "sequential",
            "rounds": 2,
            "judge": "scripted/judge",
            "debater": "scripted/unused",
            "debaters": {
                "correct": "scripted/strong",
                "incorrect": {"model": "scripted/weak", "best_of_n": 2},
            },
        }
    )
    assert set(cfg.roles()) == {"debater_correct", "debater_incorrect", "judge"}  # `debater` is not called
    assert cfg.speaker_model == "scripted/strong"  # a speaker: not mistaken for the blind judge
    state, _, speakers = debate(cfg)
    assert [t.side for t in state["transcript"]] == ["correct", "incorrect"] * 2
    said = {s: [m[-1].content for _, m in sp.backend.calls] for s, sp in speakers.items()}
    assert len(said["debater_correct"]) == 2 and all(
        "answer is correct" in p for p in said["debater_correct"]
    )
    assert len(said["debater_incorrect"]) == 2 * 2
    assert all("answer is incorrect" in p for p in said["debater_incorrect"])
    one_side = DebateConfig.model_validate(
        {"protocol": "consultancy", "judge": "scripted/j", "debaters": {"incorrect": "scripted/liar"}}
    )
    assert one_side.roles() == {
        "debater_incorrect": "scripted/liar",
        "debater": "embedded/smollm2",
        "judge": "scripted/j",
    }


def test_old_configs_keep_their_label_identity() -> None:
    """The dump of a config without per-side or optimised debaters is what it was before them."""
    graph = {"kind": "debate", "protocol": "sequential", "debater": "extractive", "judge": "scripted/j"}
    cfg = LabelConfig.model_validate({"graph": graph})
    assert "debaters" not in cfg.graph.model_dump() and cfg.graph.model_dump()["debater"] == "extractive"
    assert cfg.config_hash("data") == "5430c197cf41"  # computed before issue 20
    plain = LabelConfig.model_validate({"graph": {**graph, "debater": {"model": "extractive"}}})
    assert plain.config_hash("data") != cfg.config_hash("data")  # a debater mapping is a new config
    # How an inline spec inside a debater mapping is called changes no label, as for a role's own.
    spec = {"name": "openai/x", "openai": {"model": "m"}}
    slow = {**spec, "retry": {"max_attempts": 9}, "openai": {"model": "m", "timeout_s": 999}}

    def h(s: dict) -> str:
        g = {**graph, "debaters": {"correct": {"model": s, "best_of_n": 2, "preference": s}}}
        return LabelConfig.model_validate({"graph": g}).config_hash("d")

    assert h(spec) == h(slow) and h(spec) != h({**spec, "openai": {"model": "other"}})

    def side(s: dict) -> str:  # a side's own inline spec
        return LabelConfig.model_validate({"graph": {**graph, "debaters": {"incorrect": s}}}).config_hash("d")

    assert side(spec) == side(slow) and side(spec) != side({**spec, "openai": {"model": "other"}})


@pytest.mark.parametrize(
    ("graph", "message"),
    [
        ({"debater": {"model": "extractive", "best_of_n": 0}}, "graph.debater.best_of_n"),
        ({"debaters": {"correct": {"model": "x", "critque": 1}}}, "graph.debaters.correct.critque"),
        ({"debater": {"model": "extractive", "best_of_n": 2}, "judge": "extractive"}, "debater.preference"),
        (
            {"protocol": "n_agent", "debater": {"model": "scripted", "best_of_n": 2}},
            "n_agent agents argue none",
        ),
        ({"protocol": "blind", "debaters": {"correct": "scripted"}}, "debaters: protocol 'blind'"),
        (
            {"judge_kind": "trained", "debaters": {"incorrect": {"model": "scripted", "critique": 1}}},
            "debaters.incorrect.preference: a trained judge",
        ),
        ({"debater": 5}, "graph.debater: a model string, a key of `models:`, a model spec"),
    ],
)
def test_bad_debaters_are_errors_that_name_the_field(tmp_path: Path, graph: dict, message: str) -> None:
    cfg = {
        "split": "test",
        "graph": {"kind": "debate", "protocol": "sequential", "judge": "scripted/j", **graph},
    }
    with pytest.raises(ValidationError):
        LabelConfig.model_validate(cfg)
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(cfg))
    out = w2sg("label", str(path))
    assert out.returncode == 2 and message in out.stderr, out.stderr


def test_judge_training_transcripts_use_every_speaking_role() -> None:
    """`collect_transcripts` runs per-side debaters and preference models, never a stand-in."""
    from oversight.labelling.judges import collect_transcripts
    from w2sg.data import make_example

    cfg = DebateConfig.model_validate(
        {
            "protocol": "sequential",
            "rounds": 1,
            "judge_kind": "trained",
            "judge": "classifier/none",
            "debaters": {"correct": {"model": "scripted/a", "best_of_n": 2, "preference": "scripted/p"}},
            "debater": "scripted/b",
        }
    )
    ms, _ = models(cfg)
    rows = [make_example(Q, A, 1, support=CONTEXT)]
    speakers = {r: m for r, m in ms.items() if r != "judge"}
    (state,) = asyncio.run(collect_transcripts(cfg, speakers, rows))
    assert len(turn(state, "correct").scores) == 2 and ms["preference_correct"].usage.calls == 2
    with pytest.raises(ValueError, match="needs a model for preference_correct"):
        asyncio.run(
            collect_transcripts(
                cfg, {"debater": ms["debater"], "debater_correct": ms["debater_correct"]}, rows
            )
        )


def test_best_of_n_makes_a_weak_reader_a_stronger_debater() -> None:
    """Against the offline quote-weighing judge (its own p(side) as the preference), best-of-8 over
    a weak extractive reader's seeded draws wins the judge over more often when it argues the truth."""
    from agents import ModelSpec, get_model
    from w2sg.datasets import load

    rows = [e for e in load("sciq", "test") if e.support][:40]
    judge = get_model(ModelSpec(name="extractive/judge", extractive={"judge": True}))
    weak = get_model(ModelSpec(name="extractive/weak", extractive={"recall": 0.3, "skill": 0.5}))

    def accuracy(n: int) -> float:
        right = 0
        for e in rows:
            truth = "correct" if e.label else "incorrect"
            cfg = DebateConfig.model_validate(
                {
                    "protocol": "consultancy",
                    "consultant_side": truth,
                    "rounds": 1,
                    "judge": "j",
                    "debater": {"model": "w", "best_of_n": n},
                }
            )
            state = asyncio.run(
                invoke_recorded(
                    cfg.build({"debater": weak, "judge": judge}),
                    debate_input(e.question, e.answer, e.support or ""),
                )
            )
            right += (state["verdict"].p_true > 0.5) == bool(e.label)
        return right / len(rows)

    assert accuracy(8) > accuracy(1) + 0.1


def test_the_offline_ladder_orders_judge_accuracy() -> None:
    """configs/debaters-offline.yaml as shipped: each rung, arguing the truth against the liar,
    leaves the quote-weighing judge less accurate than the rung above (SciQ test rows; the knob
    values were fixed a priori, not fitted on these)."""
    from agents import get_model
    from agents.config import load_config
    from graphs.debaters import DebaterSet, as_debater
    from w2sg.datasets import load

    ladder = load_config(Path(__file__).parents[1] / "configs" / "debaters-offline.yaml", DebaterSet)
    specs = ladder.models
    assert all(as_debater(d).model in specs for d in ladder.debaters.values())
    judge = get_model(specs["judge"])
    rows = [e for e in load("sciq", "test") if e.support][:60]

    def accuracy(honest: str) -> float:
        right = 0
        for e in rows:
            truth, lie = ("correct", "incorrect") if e.label else ("incorrect", "correct")
            cfg = DebateConfig.model_validate(
                {
                    "protocol": "simultaneous",
                    "rounds": 1,
                    "judge": "judge",
                    "debaters": {truth: honest, lie: "liar"},
                }
            )
            models = {
                f"debater_{truth}": get_model(specs[honest]),
                f"debater_{lie}": get_model(specs["liar"]),
            }
            state = asyncio.run(run_graph(cfg, {**models, "judge": judge}, e))
            right += (state["verdict"].p_true > 0.5) == bool(e.label)
        return right / len(rows)

    got = [accuracy(name) for name in ("reader", "reader-r60", "reader-r30", "liar")]
    assert all(a > b + 0.05 for a, b in itertools.pairwise(got)), got


async def run_graph(cfg: DebateConfig, models: dict[str, Model], e: object) -> dict:
    return await invoke_recorded(cfg.build(models), debate_input(e.question, e.answer, e.support or ""))  # type: ignore[attr-defined]


@pytest.mark.slow
def test_best_of_n_over_sampled_smollm2_turns() -> None:
    """The real thing at small N: SmolLM2 samples 3 seeded candidates (batched by the embedded
    backend), SmolLM2 as judge rates them, the kept turn is the best rated of those candidates."""
    from agents import get_model
    from graphs.invoke import call_seed

    smol = get_model("embedded/smollm2")
    cfg = DebateConfig.model_validate(
        {
            "protocol": "consultancy",
            "consultant_side": "correct",
            "rounds": 1,
            "max_tokens": 12,
            "debater": {"model": "embedded/smollm2", "best_of_n": 3},
            "judge": "embedded/smollm2",
        }
    )
    state = asyncio.run(
        invoke_recorded(cfg.build({"debater": smol, "judge": smol}), debate_input(Q, A, CONTEXT))
    )
    assert "error" not in state, state.get("error")
    (kept,) = state["transcript"]
    assert len(kept.scores) == 3 and smol.usage.calls == 3 + 3 + 1  # candidates, ratings, verdict
    # The candidates again, one by one: seeded, so reproducible; not all alike; the kept one among them.
    from graphs.debate import speaker_prompt

    prompt = speaker_prompt(
        cfg, cfg.prompts.consultant, debate_input(Q, A, CONTEXT), side="correct", name="consultant"
    )
    seeds = candidate_seeds(call_seed(cfg.seed, Q, A, "consultant", 1), 3)

    async def candidates() -> list[str]:
        msgs = [{"role": "user", "content": prompt}]
        return [
            (await smol.generate(msgs, max_tokens=12, temperature=1.0, seed=s)).text.strip() for s in seeds
        ]

    texts = asyncio.run(candidates())
    assert len(set(texts)) > 1, texts
    assert kept.text == texts[max(range(3), key=lambda i: kept.scores[i])]


def test_w2sg_label_with_scripted_rules_keeps_the_best_rated_candidate(tmp_path: Path) -> None:
    """Through `w2sg label` and a YAML config: scripted rules give each candidate reply a known
    p(Yes); every kept turn is the candidate its side's preference rates highest, and each model
    role's calls are counted."""
    probs = {"a strong point": 0.9, "a fair point": 0.6, "a weak point": 0.2}
    cfg = {
        "split": "test",
        "questions": 6,
        "store": str(tmp_path / "labels.sqlite"),
        "models": {
            "deb": {"name": "scripted/deb", "scripted": {"rules": [{"replies": list(probs)}]}},
            "judge": {
                "name": "scripted/judge",
                "scripted": {
                    "rules": [
                        {"match": reply, "probs": {"Yes": p, "No": 1 - p}} for reply, p in probs.items()
                    ]
                },
            },
        },
        "graph": {
            "kind": "debate",
            "protocol": "simultaneous",
            "rounds": 1,
            "judge": "judge",
            "debater": {"model": "deb", "best_of_n": 4},
        },
    }
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(cfg))
    out = w2sg("label", str(path))
    assert out.returncode == 0, out.stderr
    assert re.search(r"debater: 96 calls", out.stdout) and re.search(r"judge: 108 calls", out.stdout), (
        out.stdout
    )
    store = LabelStore(tmp_path / "labels.sqlite")
    ((protocol, chash),) = store.db.execute("SELECT DISTINCT protocol, config_hash FROM labels").fetchall()
    turns = [t for r in store.rows(protocol, chash) for t in r.record["transcript"]]
    assert len(turns) == 24
    for t in turns:
        kept = probs[next(reply for reply in probs if reply in t["text"])]
        # the first candidate rated like the kept one is kept
        side_p = kept if t["side"] == "correct" else 1 - kept
        assert side_p == pytest.approx(max(t["scores"])), t
    assert {t["text"] for t in turns if t["side"] == "correct"} <= {"a strong point", "a fair point"}
    assert any(t["text"] == "a weak point" for t in turns if t["side"] == "incorrect")


def test_an_openai_debater_sends_one_seeded_request_per_candidate(server: object, tmp_path: Path) -> None:
    """N concurrent requests to an OpenAI-compatible server, each with its own seed: the record
    cache keeps N entries (never one deduplicated answer) and a rerun is served from them."""
    from agents import ModelSpec, get_model

    spec = ModelSpec.model_validate(
        {"name": f"openai/fake@{server.url}", "cache": {"path": str(tmp_path / "cache.sqlite")}}  # type: ignore[attr-defined]
    )
    cfg = DebateConfig.model_validate(
        {
            "protocol": "consultancy",
            "consultant_side": "correct",
            "rounds": 1,
            "max_tokens": 4,
            "judge": "scripted/judge",
            "debater": {"model": "fake", "best_of_n": 4},
        }
    )

    def run() -> tuple[dict, Model]:
        deb = get_model(spec)
        judge = wrap(ScriptedBackend("scripted/judge", probs_fn=preference_probs))
        state = asyncio.run(
            invoke_recorded(cfg.build({"debater": deb, "judge": judge}), debate_input(Q, A, CONTEXT))
        )
        asyncio.run(deb.aclose())
        return state, deb

    state, deb = run()
    assert "error" not in state, state.get("error")
    assert server.stats()["requests"] == 4 and deb.usage.calls == 4  # type: ignore[attr-defined]
    assert len(ResponseCache(tmp_path / "cache.sqlite")) == 4  # four seeds, four entries
    again, deb = run()
    assert deb.usage.cache_hits == 4 and server.stats()["requests"] == 4  # type: ignore[attr-defined]
    assert again["transcript"][0].text == state["transcript"][0].text
