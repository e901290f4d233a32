"""A person's verdicts are labels like any other: `w2sg label` queues a whole split for a human
judge or overseer, verdicts land in the label store with who gave them, when and why, a rerun
collects them, `w2sg export` exports them; `w2sg human answer` asks again on a bad reply."""

from __future__ import annotations

import asyncio
import json
import sqlite3
from pathlib import Path

import pytest
from cli import w2sg

from oversight.labelling import human
from oversight.labelling.human import HumanRules, make_reply, parse_p

# Debater A quotes the passage of the first question (verified there, unverified elsewhere);
# both try to inject markup, which every page has to show as text.
DEBATER = """
models:
  deb:
    name: scripted/deb
    scripted:
      rules:
        - match: You argue that the proposed answer is correct
          reply: 'See <quote>spores develop into female gametophytes</quote> <script>alert(1)</script>'
        - match: '.*'
          reply: 'Wrong, since <quote>spores become filaments</quote> <img src=x onerror=alert(1)>.'
"""


def human_debate(tmp_path: Path, *, questions: int = 2, rules: str = "{min_words: 2}") -> Path:
    path = tmp_path / "human.yaml"
    path.write_text(
        f"split: test\nquestions: {questions}\nstore: {tmp_path / 'h.sqlite'}\nhuman: {rules}\n{DEBATER}"
        "graph: {kind: debate, protocol: sequential, rounds: 1, debater: deb, judge_kind: human}\n"
    )
    return path


def test_replies_are_checked_in_one_place() -> None:
    rules = HumanRules(min_words=2, refuse_half=True)
    assert make_reply(70, "two words", judge="al", rules=rules, percent=True) == {
        "verdict": 0.7,
        "explanation": "two words",
        "judge": "al",
    }
    assert parse_p("0.25", rules=rules) == 0.25
    for bad, message in [("maybe", "must be a number in \\[0, 1\\]"), (1.7, "\\[0, 1\\]"), (0.5, "50 %")]:
        with pytest.raises(ValueError, match=message):
            parse_p(bad, rules=rules)
    with pytest.raises(ValueError, match="\\[0, 100\\]"):
        make_reply("150", "two words", judge="al", rules=rules, percent=True)
    with pytest.raises(ValueError, match="at least 2 words is required \\(got 1\\)"):
        make_reply(70, "one", judge="al", rules=rules, percent=True)
    assert make_reply(50, "", judge="al", rules=HumanRules(min_words=0), percent=True)["verdict"] == 0.5


def test_label_queues_a_split_for_a_human_judge_collects_and_exports(tmp_path: Path) -> None:
    cfg, store = human_debate(tmp_path), tmp_path / "h.sqlite"
    out = w2sg("label", str(cfg))
    assert out.returncode == 0, out.stderr
    assert "0 labelled, 0 failed, 0 already done, of 4" in out.stdout
    assert "4 waiting for a person" in out.stdout and "w2sg web" in out.stdout
    assert "debater: 8 calls (0 cached)" in out.stdout  # the debaters spoke while queueing
    waiting = asyncio.run(human.pending(store))
    assert len(waiting) == 4 and not any(p.can_ask for p in waiting)
    first = waiting[0]
    # What the person is shown: debaters as A and B by round, never the passage.
    assert [t["speaker"] for t in first.turns] == [
        "Debater A (argues the answer is correct)",
        "Debater B (argues the answer is incorrect)",
    ]
    assert first.rules == HumanRules(min_words=2) and first.example_id and first.protocol == "sequential"

    # A bad reply changes nothing; a good one is a label at once, with its provenance.
    with pytest.raises(ValueError, match="verdict must be a number"):
        asyncio.run(human.answer(store, first.thread_id, {"verdict": 3, "judge": "al"}))
    state = asyncio.run(
        human.answer(store, first.thread_id, make_reply(0.9, "B has no quote", judge="al", rules=first.rules))
    )
    assert state["verdict"].p_true == 0.9 and state["verdict"].judge == "human:al"
    with sqlite3.connect(store) as db:
        (row,) = db.execute("SELECT example_id, p_true, record FROM labels").fetchall()
    record = json.loads(row[2])
    assert row[0] == first.example_id and row[1] == 0.9
    assert record["human"]["judge"] == "al" and record["human"]["explanation"] == "B has no quote"
    assert record["human"]["time"].endswith("Z") and record["verdict"]["method"] == "human"
    assert record["gold"] in (0, 1) and record["models"] == {"debater": "scripted/deb"}

    # Rerunning queues nothing twice and reports what is done and what waits.
    again = w2sg("label", str(cfg))
    assert again.returncode == 0, again.stderr
    assert "1 already done, of 4" in again.stdout and "3 waiting for a person" in again.stdout
    with sqlite3.connect(store) as db:
        assert db.execute("SELECT count(*) FROM w2sg_threads").fetchone()[0] == 4

    exported = w2sg("export", str(store), "--out", str(tmp_path / "h.jsonl"))
    assert exported.returncode == 0 and "wrote 1 labels" in exported.stdout, exported.stderr
    (line,) = (tmp_path / "h.jsonl").read_text().splitlines()
    got = json.loads(line)
    assert got["human"]["explanation"] == "B has no quote"
    # Where the row came from travels through the queue: SciQ's test file has no id column, so its row.
    assert isinstance(got["source_id"], int) and got["source"]["question"] == got["question"]


def test_a_verdict_whose_label_was_lost_is_collected_by_a_rerun(tmp_path: Path) -> None:
    """A process killed between the graph's verdict and its label: the rerun stores it."""
    cfg, store = human_debate(tmp_path, questions=1), tmp_path / "h.sqlite"
    assert w2sg("label", str(cfg)).returncode == 0
    item = asyncio.run(human.pending(store))[0]
    asyncio.run(
        human.answer(store, item.thread_id, make_reply(0.2, "not convinced", judge="b", rules=item.rules))
    )
    with sqlite3.connect(store) as db:
        db.execute("DELETE FROM labels")
    out = w2sg("label", str(cfg))
    assert "1 labelled, 0 failed, 0 already done, of 2" in out.stdout and "1 waiting" in out.stdout, (
        out.stdout
    )


def test_cli_asks_again_on_a_bad_reply(tmp_path: Path) -> None:
    cfg, store = human_debate(tmp_path, questions=1), tmp_path / "h.sqlite"
    assert w2sg("label", str(cfg)).returncode == 0
    out = w2sg(
        "human", "answer", str(store), "--judge", "cli", stdin="maybe\n1.7\n0.3\nno\nquote looks fake\n"
    )
    assert out.returncode == 0, out.stderr
    assert "got 'maybe'; try again" in out.stderr and "got '1.7'; try again" in out.stderr
    assert "at least 2 words is required (got 1); try again" in out.stderr
    assert "recorded p(true) = 0.300" in out.stdout
    # What a debater wrote is shown as written, not as markup.
    assert "<script>alert(1)</script>" in out.stdout
    # Given as options, a bad reply is refused and nothing changes.
    bad = w2sg("human", "answer", str(store), "--verdict", "1.7", "--explanation", "a b")
    assert bad.returncode == 2 and "nothing was changed" in bad.stderr
    assert len(asyncio.run(human.pending(store))) == 1


def test_an_interaction_with_a_human_overseer_in_a_labelling_run(tmp_path: Path) -> None:
    path = tmp_path / "i.yaml"
    path.write_text(
        f"split: test\nquestions: 1\nstore: {tmp_path / 'i.sqlite'}\n"
        "graph: {kind: interaction, assistant: scripted, overseer: human, max_followups: 1}\n"
    )
    out = w2sg("label", str(path))
    assert out.returncode == 0 and "2 waiting for a person" in out.stdout, out.stderr
    store = tmp_path / "i.sqlite"
    item = asyncio.run(human.pending(store))[0]
    assert item.can_ask and item.protocol == "interaction"
    state = asyncio.run(human.answer(store, item.thread_id, human.make_ask("Are you sure?", judge="c")))
    assert [t.kind for t in state["transcript"]] == ["argument", "question", "answer"]
    item = next(p for p in asyncio.run(human.pending(store)) if p.thread_id == item.thread_id)
    assert not item.can_ask
    assert [t["speaker"] for t in item.turns] == ["assistant", "Judge (question)", "assistant"]
    asyncio.run(
        human.answer(store, item.thread_id, make_reply(0.6, "it said so", judge="c", rules=item.rules))
    )
    assert "1 already done, of 2" in w2sg("label", str(path)).stdout


def test_an_interact_queue_exports_its_verdicts(tmp_path: Path) -> None:
    """`w2sg interact --db` items are labels too (under their thread id): export finds them."""
    cfg = tmp_path / "h.yaml"
    cfg.write_text("assistant: scripted\noverseer: human\n")
    db = tmp_path / "q.sqlite"
    assert w2sg("interact", str(cfg), "-q", "Why?", "-a", "Because", "--db", str(db)).returncode == 0
    done = w2sg("human", "answer", str(db), "--verdict", "0.4", "--explanation", "unsure")
    assert done.returncode == 0, done.stderr
    out = w2sg("export", str(db), "--out", str(tmp_path / "q.jsonl"))
    assert out.returncode == 0 and "wrote 1 labels" in out.stdout, out.stderr
    row = json.loads((tmp_path / "q.jsonl").read_text())
    assert (
        row["protocol"] == "interaction" and row["p_true"] == 0.4 and row["human"]["explanation"] == "unsure"
    )


def test_an_interactive_human_judge_asks_and_the_debaters_answer(tmp_path: Path) -> None:
    path = tmp_path / "ask.yaml"
    path.write_text(
        f"split: test\nquestions: 1\nstore: {tmp_path / 'a.sqlite'}\n{DEBATER}"
        "graph: {kind: debate, protocol: sequential, rounds: 1, debater: deb, judge_kind: human,\n"
        "        interactive_judge: true}\n"
    )
    assert w2sg("label", str(path)).returncode == 0
    store = tmp_path / "a.sqlite"
    item = asyncio.run(human.pending(store))[0]
    assert item.can_ask
    asyncio.run(human.answer(store, item.thread_id, human.make_ask("Which passage line?", judge="d")))
    item = next(p for p in asyncio.run(human.pending(store)) if p.thread_id == item.thread_id)
    assert [(t["round"], t["speaker"]) for t in item.turns] == [
        (1, "Debater A (argues the answer is correct)"),
        (1, "Debater B (argues the answer is incorrect)"),
        (2, "Judge (question)"),
        (2, "Debater A (argues the answer is correct)"),
        (2, "Debater B (argues the answer is incorrect)"),
    ]
    assert not item.can_ask  # up to `rounds` questions
    with pytest.raises(ValueError, match="no follow-up questions left"):
        asyncio.run(human.answer(store, item.thread_id, human.make_ask("And?", judge="d")))
    state = asyncio.run(
        human.answer(store, item.thread_id, make_reply(0.75, "fine", judge="d", rules=item.rules))
    )
    assert state["verdict"].p_true == 0.75


def test_a_human_judge_is_configured_sensibly() -> None:
    from graphs.debate import DebateConfig
    from graphs.interaction import InteractionConfig

    cfg = DebateConfig(judge_kind="human")
    assert cfg.needs_person and not cfg.lockstep and "judge" not in cfg.roles()
    with pytest.raises(ValueError, match="a person judges once"):
        DebateConfig(judge_kind="human", position_swap=True)
    with pytest.raises(ValueError, match="overseer: human"):
        InteractionConfig(judge_kind="human")


def test_a_human_judge_hears_per_side_debaters_each_from_its_own_spec(tmp_path: Path) -> None:
    # The queued thread rebuilds the graph from its config alone: each side's model (a `models:`
    # key on one side, a debater mapping on the other) is written in as its spec.
    path = tmp_path / "sides.yaml"
    path.write_text(
        f"split: test\nquestions: 1\nstore: {tmp_path / 'h.sqlite'}\n{DEBATER}"
        "  liar: {name: scripted/liar, scripted: {default_reply: 'Not so.'}}\n"
        "graph: {kind: debate, protocol: sequential, rounds: 1, judge_kind: human,\n"
        "        debaters: {correct: deb, incorrect: {model: liar}}}\n"
    )
    out = w2sg("label", str(path))
    assert out.returncode == 0, out.stderr
    assert "debater_correct: 2 calls" in out.stdout and "debater_incorrect: 2 calls" in out.stdout
    store = tmp_path / "h.sqlite"
    first = asyncio.run(human.pending(store))[0]
    assert first.turns[1]["text"] == "Not so." and "spores develop" in first.turns[0]["text"]
    reply = make_reply(80, "A quoted the passage", judge="al", rules=HumanRules(), percent=True)
    state = asyncio.run(human.answer(store, first.thread_id, reply))
    assert state["verdict"].p_true == pytest.approx(0.8)
    assert "1 already done" in w2sg("label", str(path)).stdout


def test_a_queue_from_before_source_ids_gains_the_column(tmp_path: Path) -> None:
    """A queue file made before rows carried their source (no `origin` column) gains the column
    and takes new rows, which keep it."""
    from agents import load_config
    from oversight.labelling.label import LabelConfig, label

    store = tmp_path / "h.sqlite"
    with sqlite3.connect(store) as db:  # the queue's table as the previous version left it
        db.execute(human.THREADS)
        for name, kind in human.COLUMNS.items():
            if name != "origin":
                db.execute(f"ALTER TABLE w2sg_threads ADD COLUMN {name} {kind}")
    asyncio.run(label(load_config(human_debate(tmp_path, questions=1), LabelConfig)))
    with sqlite3.connect(store) as db:
        origins = [json.loads(r[0]) for r in db.execute("SELECT origin FROM w2sg_threads")]
    assert len(origins) == 2 and all(isinstance(o["source_id"], int) and o["source"] for o in origins)
