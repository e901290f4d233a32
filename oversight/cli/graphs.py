"""`w2sg debate | graph | judge train | interact | human`: the oversight graphs' commands."""

from __future__ import annotations

import asyncio
import os
from contextlib import closing
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.markup import escape
from rich.table import Table

from agents import closing_all, get_model
from agents.names import model_path_problem, resolve_model_path
from oversight.cli.app import SetOpt, TrackOpt, app, check_models, console, err_console, load, tracking_of

if TYPE_CHECKING:
    from graphs.debate import DebateConfig
    from oversight.labelling.human import HumanRules
    from oversight.labelling.judges import JudgeInfo


DebateConfigArg = Annotated[Path, typer.Argument(help="debate YAML (see configs/debate-*.yaml)")]


def _load_debate(
    config: Path, overrides: list[str] | None, *, check: bool = True, ignore: tuple[str, ...] = ()
) -> DebateConfig:
    from graphs.debate import DebateConfig

    return load(config, DebateConfig, check=check, ignore=ignore, overrides=overrides)


@app.command("debate", rich_help_panel="Oversight graphs")
def debate_cmd(
    config: DebateConfigArg,
    question: Annotated[str, typer.Option("--question", "-q", help="the question")],
    answer: Annotated[str, typer.Option("--answer", "-a", help="the proposed answer to judge")],
    context: Annotated[str, typer.Option(help="privileged passage the debaters may quote")] = "",
    protocol: Annotated[str | None, typer.Option(help="override the config's protocol")] = None,
    set_: SetOpt = None,
) -> None:
    """Run one debate (or consultancy, blind judge, N-agent debate) and print transcript and verdict."""
    from graphs.debate import debate_input
    from graphs.invoke import invoke_recorded

    # --protocol is `--set protocol=...`; models are checked after it (it decides whether a debater is called)
    cfg = _load_debate(config, [*(set_ or []), *([f"protocol={protocol}"] if protocol else [])], check=False)
    check_models(cfg, config)  # after --protocol: it decides whether the debater is called

    async def go() -> dict:
        async with closing_all({role: get_model(spec) for role, spec in cfg.specs().items()}) as models:
            return await invoke_recorded(cfg.build(models), debate_input(question, answer, context))

    with console.status(f"{cfg.protocol}: {cfg.rounds} round(s)"):
        state = asyncio.run(go())
    for t in state.get("transcript", []):
        who = t.speaker + (f" ({t.side})" if t.side else "")
        quotes = "".join(f" [{'verified' if q.verified else 'unverified'} quote]" for q in t.quotes)
        console.print(f"[bold]round {t.round} · {escape(who)}[/bold]{escape(quotes)}", highlight=False)
        console.print(t.text, highlight=False, markup=False)
    if "error" in state:  # what was said is printed above; the failed call ends the command
        raise RuntimeError(f"no verdict: {state['error']}")
    v = state["verdict"]
    runs = ", ".join(f"{p:.3f}" for p in v.p_runs)
    console.print(
        f"[bold]verdict[/bold] p(true) = {v.p_true:.3f} ({v.method}; runs {runs}); "
        f"{v.tokens} tokens, {v.seconds:.1f} s",
        highlight=False,
    )


@app.command("graph", rich_help_panel="Oversight graphs")
def graph_cmd(
    config: DebateConfigArg,
    out: Annotated[Path, typer.Option(help="output path without suffix; .mmd and .png are written")] = Path(
        "debate-graph"
    ),
    set_: SetOpt = None,
) -> None:
    """Draw the configured graph: Mermaid text (.mmd) and a PNG."""
    from agents import wrap
    from agents.backends.scripted import ScriptedBackend
    from graphs.draw import draw_png, mermaid

    cfg = _load_debate(config, set_, check=False)  # no model is called: a judge not yet trained is fine
    # The drawing does not depend on the models: scripted stand-ins avoid loading any.
    stand_in = wrap(ScriptedBackend("scripted/stand-in"))
    graph = cfg.build(dict.fromkeys(cfg.roles(), stand_in))
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".mmd").write_text(mermaid(graph))
    draw_png(graph, out.with_suffix(".png"))
    console.print(f"wrote {out.with_suffix('.mmd')} and {out.with_suffix('.png')}", highlight=False)


judge_app = typer.Typer(help="Trained judges: classifiers that read what a protocol shows the judge.")
app.add_typer(judge_app, name="judge", rich_help_panel="Oversight graphs")


@judge_app.command("train")
def judge_train_cmd(
    config: DebateConfigArg,
    out: Annotated[Path, typer.Option(help="directory to save the judge in (load it as classifier/<out>)")],
    questions: Annotated[int, typer.Option(help="judge-training questions (two rows each)")] = 300,
    dataset: Annotated[
        str,
        typer.Option(
            help="a registered dataset (sciq, boolq, ...), a data file or folder, or a YAML mapping of "
            "dataset fields, e.g. '{path: qa.csv, format: choices_index}'"
        ),
    ] = "sciq",
    split: Annotated[
        str,
        typer.Option(help="the dataset's split (SciQ offline: only `test` has passages for the debaters)"),
    ] = "test",
    base: Annotated[str, typer.Option(help="classifier to fine-tune")] = "embedded/minilm",
    epochs: Annotated[float, typer.Option(help="training epochs (the default is `w2sg run`'s)")] = 5.0,
    seed: Annotated[int, typer.Option(help="question sampling and training seed")] = 0,
    concurrency: Annotated[int, typer.Option(help="debates in flight")] = 32,
    holdout: Annotated[
        float, typer.Option(help="share of the questions kept out of training and selection, to score it")
    ] = 0.2,
    set_: SetOpt = None,
    track: TrackOpt = None,
) -> None:
    """Debate `questions` questions of a dataset under CONFIG's protocol, then fine-tune a judge on gold:
    trained on most questions, its checkpoint picked on 20%, scored on `--holdout` more."""
    from oversight.labelling.judges import judge_train_config, train_judge, transcripts_to_judge
    from w2sg.data import split_by_question
    from w2sg.datasets import load_split, parse_spec
    from w2sg.tracking import open_tracker

    # The config's judge is what this trains, so it need not exist yet.
    cfg = _load_debate(config, set_, ignore=("judge",))
    if (problem := model_path_problem(base)) is not None:
        raise ValueError(f"--base: {problem}")
    if not 0.0 <= holdout < 0.8:
        raise ValueError(f"--holdout: a share in [0, 0.8), got {holdout}")
    what = f"questions in {dataset} {split}"
    data = load_split(parse_spec(dataset), split, seed=seed)
    rows = split_by_question(data, {"judge": questions}, seed=seed, what=what)["judge"]

    with console.status(f"{len(rows)} {cfg.protocol} debates"):
        states = asyncio.run(transcripts_to_judge(cfg, rows, concurrency=concurrency))
    # `w2sg run`'s judge training (judges.judge_train_config), on any device.
    tcfg = judge_train_config(epochs=epochs, seed=seed, device="auto")
    # curves.png goes in the judge's folder always; --track adds event files / a wandb run there.
    tracker = open_tracker(tracking_of(track), out, name=f"judge-{out.name}")
    with console.status(f"fine-tuning {base} on {len(rows)} transcripts"), closing(tracker):
        info = train_judge(
            cfg,
            rows,
            states,
            base_path=resolve_model_path(base),
            out_dir=out,
            train_cfg=tcfg,
            test_frac=holdout,
            seed=seed,
            tracker=tracker,
        )
    _print_judge(info, out)


def _print_judge(info: JudgeInfo, out: Path) -> None:
    """A trained judge's accuracies, and how a config uses it."""
    held = (
        f"held-out accuracy {info.heldout_accuracy:.3f} on {info.heldout_rows} rows (not used to train or "
        "select it); "
        if info.heldout_accuracy is not None
        else ""
    )
    console.print(
        f"judge for {info.protocol}: {held}{info.val_accuracy:.3f} on the {info.rows['val']} rows that "
        f"picked its checkpoint; use it as `judge: classifier/{out}` with `judge_kind: trained`",
        highlight=False,
        soft_wrap=True,
    )


human_app = typer.Typer(help="Real humans as overseers: a queue in a SQLite file, answered any time.")
app.add_typer(human_app, name="human", rich_help_panel="Oversight graphs")


def _show_interaction(state: dict) -> None:
    for t in state.get("transcript", []):
        console.print(f"[bold]{escape(t.speaker)} ({t.kind})[/bold]", highlight=False)
        console.print(t.text, highlight=False, markup=False)
    if "verdict" in state:
        v = state["verdict"]
        console.print(f"[bold]verdict[/bold] p(true) = {v.p_true:.3f} ({v.method})", highlight=False)


@app.command("interact", rich_help_panel="Oversight graphs")
def interact_cmd(
    config: Annotated[Path, typer.Argument(help="interaction YAML (see configs/interact-*.yaml)")],
    question: Annotated[str, typer.Option("--question", "-q", help="the question")],
    answer: Annotated[str, typer.Option("--answer", "-a", help="the proposed answer to judge")],
    context: Annotated[str, typer.Option(help="privileged passage the assistant may use")] = "",
    gold: Annotated[bool | None, typer.Option(help="simulated overseer only: is the answer correct?")] = None,
    db: Annotated[Path | None, typer.Option(help="human overseer: the SQLite queue to wait in")] = None,
    set_: SetOpt = None,
) -> None:
    """A strong assistant helps a weak overseer (model, simulated or human) judge one answer."""
    from graphs.interaction import InteractionConfig, interaction_input
    from graphs.invoke import invoke_recorded
    from oversight.labelling import human

    cfg = load(config, InteractionConfig, overrides=set_)
    if cfg.overseer == "human":
        if db is None:
            raise ValueError("a human overseer waits in a queue: pass --db FILE")
        tid = asyncio.run(human.start(db, cfg, question, answer, context))
        console.print(
            f"waiting for a person: thread {tid} in {db} (`w2sg human answer {db}`)", highlight=False
        )
        return
    if cfg.overseer == "simulated" and gold is None:
        raise ValueError("a simulated overseer needs --gold or --no-gold")

    async def go() -> dict:
        async with closing_all({role: get_model(spec) for role, spec in cfg.specs().items()}) as models:
            return await invoke_recorded(
                cfg.build(models), interaction_input(question, answer, context, gold)
            )

    state = asyncio.run(go())
    _show_interaction(state)
    if "error" in state:
        raise RuntimeError(f"no verdict: {state['error']}")


@human_app.command("queue")
def human_queue_cmd(db: Annotated[Path, typer.Argument(help="the SQLite queue")]) -> None:
    """List the items waiting for a person."""
    from oversight.labelling import human

    waiting = asyncio.run(human.pending(db))
    table = Table("thread", "question", "answer", "can ask", "last error")
    for p in waiting:
        table.add_row(p.thread_id, p.question, p.answer, "yes" if p.can_ask else "no", p.error or "")
    console.print(table)
    console.print(f"{len(waiting)} waiting", highlight=False)


@human_app.command("answer")
def human_answer_cmd(
    db: Annotated[Path, typer.Argument(help="the SQLite queue (a label store, or an interact --db file)")],
    thread: Annotated[str | None, typer.Option(help="which item; default: the oldest waiting")] = None,
    verdict: Annotated[float | None, typer.Option(help="p(true) in [0, 1]; omit to be asked")] = None,
    explanation: Annotated[str | None, typer.Option(help="why; omit to be asked")] = None,
    ask: Annotated[str | None, typer.Option(help="a follow-up question for the assistant instead")] = None,
    judge: Annotated[str, typer.Option(help="your id, stored with the verdict")] = os.environ.get(
        "USER", "anonymous"
    ),
) -> None:
    """Show an item's transcript and resume it with your verdict (or a follow-up question).

    Typed at the prompt, a reply that is refused ("maybe", 1.7, no explanation) is asked again;
    given as options, it is refused and nothing changes. The web page (`w2sg web`) validates and
    resumes through the same functions (`oversight.labelling.human.make_reply`, `answer`)."""
    from oversight.labelling import human

    waiting = asyncio.run(human.pending(db))
    if not waiting:
        console.print("nothing is waiting", highlight=False)
        return
    item = next((p for p in waiting if p.thread_id == thread), None) if thread else waiting[0]
    if item is None:
        raise ValueError(f"{db}: thread {thread!r} is not waiting for a person")
    console.print(
        f"[bold]Question:[/bold] {escape(item.question)}\n"
        f"[bold]Proposed answer:[/bold] {escape(item.answer)}",
        highlight=False,
    )
    if item.context:
        console.print(f"[bold]Reference passage:[/bold] {escape(item.context)}", highlight=False)
    console.print(item.transcript, highlight=False, markup=False)
    reply: dict | None = None
    rules = item.rules
    if item.stalled:
        console.print("this item stalled after a reply (the run failed); resuming it", highlight=False)
    elif ask is not None:
        reply = human.make_ask(ask, judge=judge)
    elif verdict is not None and (explanation is not None or rules.min_words == 0):
        try:
            reply = human.make_reply(verdict, explanation or "", judge=judge, rules=rules)
        except ValueError as e:
            raise ValueError(f"{e} (nothing was changed)") from e
    else:
        try:
            reply = _prompt_reply(item.can_ask, rules, judge, verdict)
        except ValueError as e:
            raise ValueError(f"{e} (nothing was changed)") from e
    try:
        state = asyncio.run(human.answer(db, item.thread_id, reply))
    except ValueError as e:  # the boundary prints it, with what it means for the queue
        raise ValueError(f"{e} (nothing was changed)") from e
    except human.ResumeFailed as e:
        raise RuntimeError(f"{e}; `w2sg human answer {db} --thread {item.thread_id}` retries it") from e
    if "verdict" in state:
        console.print(f"recorded p(true) = {state['verdict'].p_true:.3f} for thread {item.thread_id}")
    else:
        console.print(f"asked; the assistant answered. Thread {item.thread_id} waits for your verdict.")


def _prompt_reply(can_ask: bool, rules: HumanRules, judge: str, p: float | None) -> dict:
    """Ask at the terminal until the reply is valid: each refusal says why, then asks again
    (a p given as --verdict is checked first, and refused without asking)."""
    from oversight.labelling import human

    value = None if p is None else human.parse_p(p, rules=rules)
    while value is None:
        raw = typer.prompt("p(true) in [0, 1]" + (", or a question starting with ?" if can_ask else ""))
        try:
            if raw.startswith("?"):
                return human.make_ask(raw[1:], judge=judge)
            value = human.parse_p(raw, rules=rules)
        except ValueError as e:
            err_console.print(f"{e}; try again", highlight=False, markup=False)
    while True:
        plural = "s" * (rules.min_words > 1)
        why = typer.prompt(f"why? (at least {rules.min_words} word{plural})") if rules.min_words else ""
        try:
            return human.make_reply(value, why, judge=judge, rules=rules)
        except ValueError as e:
            err_console.print(f"{e}; try again", highlight=False, markup=False)
