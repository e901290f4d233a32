"""`w2sg`: one CLI whose subcommands map to config files."""

from __future__ import annotations

import asyncio
import logging
import os
import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.logging import RichHandler
from rich.table import Table

from agents import ConfigError, ModelError, ModelSpec, get_model, load_config
from oversight.config import ExperimentConfig
from oversight.paths import resolve_model_path

if TYPE_CHECKING:
    from graphs.config import DebateConfig
    from w2sg.experiment import W2SGConfig

app = typer.Typer(
    help="Weak-to-strong oversight simulator.", no_args_is_help=True, pretty_exceptions_enable=False
)
models_app = typer.Typer(help="Inspect and check configured models.", no_args_is_help=True)
app.add_typer(models_app, name="models")
console = Console()
err_console = Console(stderr=True)

CHECK_PROMPT = "In one sentence: why do objects fall towards the Earth?"
JUDGE_PROMPT = (
    "Question: What element is present in all organic molecules?\nAnswer: carbon\n"
    "Is the answer correct? Reply Yes or No."
)


@app.callback()
def _root(verbose: Annotated[bool, typer.Option("--verbose", "-v", help="log at INFO")] = False) -> None:
    if not verbose:  # our own status lines show progress; transformers' bars would interleave
        os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING,
        format="%(message)s",
        handlers=[RichHandler(console=err_console, show_path=False)],
    )
    for noisy in ("httpx", "httpx2", "openai"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def _fail(e: Exception) -> typer.Exit:
    err_console.print(f"[red]error:[/red] {e}", markup=True, highlight=False)
    return typer.Exit(2)


def _load(config: Path) -> ExperimentConfig:
    try:
        return load_config(config, ExperimentConfig)
    except ConfigError as e:
        raise _fail(e) from None


@models_app.command("list")
def models_list(config: Annotated[Path, typer.Argument(help="YAML config with a `models:` mapping")]) -> None:
    """List the models a config names."""
    table = Table("name", "model", "provider", "concurrency")
    for key, spec in _load(config).models.items():
        table.add_row(key, spec.name, spec.provider, str(spec.max_concurrency or "backend default"))
    console.print(table)


@models_app.command("check")
def models_check(
    config: Annotated[Path, typer.Argument(help="YAML config with a `models:` mapping")],
    only: Annotated[list[str] | None, typer.Option(help="check only these model names")] = None,
    prompt: Annotated[str, typer.Option(help="prompt for the generate call")] = CHECK_PROMPT,
    max_tokens: Annotated[int, typer.Option(help="tokens to generate")] = 32,
) -> None:
    """Call each configured model once (generate + Yes/No choice_probs); print latency and tokens/s."""
    cfg = _load(config)
    names = only or list(cfg.models)
    unknown = [n for n in names if n not in cfg.models]
    if unknown:
        raise _fail(ValueError(f"{config}: no model named {unknown}; configured: {list(cfg.models)}"))
    table = Table("name", "model", "load s", "latency s", "tokens", "tok/s", "p(Yes)", "via")
    replies: list[str] = []
    failed = False
    for name in names:
        with console.status(f"checking {name} ({cfg.models[name].name})"):
            try:
                row = asyncio.run(_check_one(cfg.models[name], prompt, max_tokens))
            except (ModelError, ConfigError, ValueError) as e:
                failed = True
                err_console.print(f"[red]{name}: {e}[/red]", highlight=False)
                continue
        replies.append(f"[bold]{name}:[/bold] {row.pop()}")
        table.add_row(name, *row)
    console.print(table)
    for line in replies:
        console.print(line, highlight=False)
    if failed:
        raise typer.Exit(1)


async def _check_one(spec: ModelSpec, prompt: str, max_tokens: int) -> list[str]:
    t0 = time.perf_counter()
    model = get_model(spec)
    load_s = time.perf_counter() - t0
    async with model:
        c = await model.generate(prompt, max_tokens=max_tokens)
        p = await model.choice_probs(JUDGE_PROMPT, ["Yes", "No"])
    tps = c.usage.output_tokens / c.seconds if c.seconds > 0 else float("nan")
    return [
        spec.name,
        f"{load_s:.2f}",
        f"{c.seconds:.2f}",
        str(c.usage.output_tokens),
        f"{tps:.1f}",
        f"{p['Yes']:.3f}",
        p.method,
        c.text.strip().replace("\n", " "),
    ]


@app.command()
def chat(
    model: Annotated[
        str,
        typer.Argument(
            help="model string (embedded/smollm2, hf/DIR, openai/NAME@URL) or a name from --config"
        ),
    ],
    message: Annotated[str, typer.Option("--message", "-m", help="the user message")],
    config: Annotated[Path | None, typer.Option(help="config whose `models:` defines MODEL")] = None,
    system: Annotated[str | None, typer.Option(help="system prompt")] = None,
    max_tokens: Annotated[int, typer.Option(help="tokens to generate")] = 128,
    temperature: Annotated[float, typer.Option(help="0 = greedy")] = 0.0,
    seed: Annotated[int | None, typer.Option(help="sampling seed")] = None,
    choices: Annotated[str | None, typer.Option(help="comma-separated choices to score, e.g. Yes,No")] = None,
) -> None:
    """One chat turn with a model; optionally score choices for the same prompt."""
    try:
        spec = (
            _load(config).models[model] if config and model in _load(config).models else ModelSpec(name=model)
        )
    except ValueError as e:
        raise _fail(e) from None
    messages = ([{"role": "system", "content": system}] if system else []) + [
        {"role": "user", "content": message}
    ]

    async def run() -> None:
        async with get_model(spec) as m:
            with console.status(f"{spec.name} is thinking"):
                c = await m.generate(messages, max_tokens=max_tokens, temperature=temperature, seed=seed)
                p = (
                    await m.choice_probs(messages, [s.strip() for s in choices.split(",")])
                    if choices
                    else None
                )
            console.print(f"[bold]user:[/bold] {message}", highlight=False)
            console.print(f"[bold]{spec.name}:[/bold] {c.text.strip()}", highlight=False)
            console.print(
                f"[dim]{c.usage.input_tokens} in / {c.usage.output_tokens} out tokens, "
                f"{c.seconds:.2f}s, finish={c.finish_reason}[/dim]"
            )
            if p is not None:
                shown = ", ".join(f"{k}={v:.3f}" for k, v in p.probs.items())
                console.print(f"[bold]choice probs[/bold] ({p.method}): {shown}", highlight=False)

    try:
        asyncio.run(run())
    except ModelError as e:
        raise _fail(e) from None


def _load_w2sg(config: Path, device: str | None) -> W2SGConfig:
    """The experiment config, with --device applied to both train sections."""
    from w2sg.experiment import W2SGConfig

    try:
        cfg = load_config(config, W2SGConfig)
        if device is not None:
            cfg = W2SGConfig.model_validate(
                {
                    **cfg.model_dump(),
                    "weak_train": {**cfg.weak_train.model_dump(), "device": device},
                    "strong_train": {**cfg.strong_train.model_dump(), "device": device},
                }
            )
    except ConfigError as e:
        raise _fail(e) from None
    except ValueError as e:
        raise _fail(ValueError(f"--device: {e}")) from None
    return cfg


ConfigArg = Annotated[Path, typer.Argument(help="W2SG experiment YAML (see configs/w2sg-sciq.yaml)")]
ForceOpt = Annotated[bool, typer.Option(help="rerun even if the run folder is complete")]
DeviceOpt = Annotated[str | None, typer.Option(help="auto, cpu or cuda: overrides both train sections")]


def _run_and_print(cfg: W2SGConfig, force: bool, status: str) -> None:
    from w2sg.experiment import run_experiment
    from w2sg.report import markdown_table

    with console.status(f"{status}; -v shows each step"):
        try:
            result = run_experiment(cfg, resolve=resolve_model_path, force=force)
        except (ValueError, OSError) as e:
            raise _fail(e) from None
    console.print(markdown_table(result), highlight=False)
    console.print(f"[dim]results in {cfg.out_dir / result.run_id}[/dim]")


@app.command("train")
def train_cmd(config: ConfigArg, force: ForceOpt = False, device: DeviceOpt = None) -> None:
    """Weak floor, weak labels, strong students per label source and loss, ceiling, PGR."""
    _run_and_print(_load_w2sg(config, device), force, "training (weak teacher, ceiling, students)")


@app.command("ensemble")
def ensemble_cmd(config: ConfigArg, force: ForceOpt = False, device: DeviceOpt = None) -> None:
    """Single weak teacher vs bagging vs boosting: label accuracy, student accuracy and PGR.

    Runs the experiment with every ensemble in the config's `ensembles:` as a label source."""
    cfg = _load_w2sg(config, device)
    if not cfg.ensembles:
        raise _fail(ConfigError(f"{config}: field 'ensembles': add at least one (method: bagging|boosting)"))
    sources = list(dict.fromkeys(["weak", *cfg.label_sources, *(e.source for e in cfg.ensembles)]))
    cfg = cfg.model_copy(update={"label_sources": sources})
    _run_and_print(cfg, force, "training weak teachers, ensembles, students and the ceiling")


@app.command("icl")
def icl_cmd(
    config: ConfigArg,
    force: ForceOpt = False,
    device: DeviceOpt = None,
    model: Annotated[str | None, typer.Option(help="override icl.model, e.g. openai/<m>@<url>")] = None,
) -> None:
    """In-context-learning W2SG: ICL accuracy per demo selector and label source, vs gold demos."""
    from w2sg.icl import ICLConfig
    from w2sg.icl_experiment import run_icl
    from w2sg.report import icl_table

    cfg = _load_w2sg(config, device)
    icl = cfg.icl or ICLConfig()
    if model is not None:
        icl = icl.model_copy(update={"model": model})
    cfg = cfg.model_copy(update={"icl": icl})
    try:
        llm = get_model(icl.model)
    except (ModelError, ValueError) as e:
        raise _fail(e) from None
    try:
        result = run_icl(cfg, llm, resolve=resolve_model_path, force=force)
    except (ModelError, ValueError, OSError) as e:
        raise _fail(e) from None
    finally:
        asyncio.run(llm.aclose())
    console.print(icl_table(result), highlight=False)
    console.print(f"[dim]results in {cfg.out_dir / result.run_id}[/dim]")


@app.command("compare")
def compare_cmd(
    run_dir: Annotated[Path, typer.Argument(help="a run folder holding predictions.npz")],
    a: Annotated[str, typer.Argument(help="a column, e.g. student__weak_p_true_with_support__xent")],
    b: Annotated[str, typer.Argument(help="the column to compare with, on the same test rows")],
    n_boot: Annotated[int, typer.Option(help="bootstrap resamples")] = 10000,
) -> None:
    """Paired test-accuracy difference a − b with a 95% bootstrap CI (rows resampled jointly)."""
    import numpy as np

    from w2sg.metrics import bootstrap_ci

    path = run_dir / "predictions.npz"
    if not path.exists():
        raise _fail(FileNotFoundError(f"{path}: no such file (run `w2sg train` first)"))
    z = np.load(path)
    for col in (a, b):
        if col not in z.files:
            cols = ", ".join(f for f in z.files if f not in ("ids", "gold"))
            raise _fail(KeyError(f"{path}: no column {col!r}; columns: {cols}"))
    gold = z["gold"] > 0.5
    ok_a, ok_b = (z[a] > 0.5) == gold, (z[b] > 0.5) == gold
    diff = float(ok_a.mean() - ok_b.mean())
    lo, hi = bootstrap_ci(lambda x, y: float(x.mean() - y.mean()), [ok_a, ok_b], n_boot=n_boot)
    console.print(
        f"{a}: {ok_a.mean():.3f}  {b}: {ok_b.mean():.3f}  difference {diff:+.3f} "
        f"[{lo:+.3f}, {hi:+.3f}] (95% paired bootstrap, {len(gold)} rows)",
        highlight=False,
        soft_wrap=True,
    )


DebateConfigArg = Annotated[Path, typer.Argument(help="debate YAML (see configs/debate-*.yaml)")]


def _load_debate(config: Path) -> DebateConfig:
    from graphs.config import DebateConfig

    try:
        return load_config(config, DebateConfig)
    except ConfigError as e:
        raise _fail(e) from None


@app.command("debate")
def debate_cmd(
    config: DebateConfigArg,
    question: Annotated[str, typer.Option("--question", "-q", help="the question")],
    answer: Annotated[str, typer.Option("--answer", "-a", help="the proposed answer to judge")],
    context: Annotated[str, typer.Option(help="privileged passage the debaters may quote")] = "",
    protocol: Annotated[str | None, typer.Option(help="override the config's protocol")] = None,
) -> None:
    """Run one debate (or consultancy, blind judge, N-agent debate) and print transcript and verdict."""
    from graphs.debate import build_debate_graph, run_debate

    cfg = _load_debate(config)
    if protocol is not None:
        try:
            cfg = type(cfg).model_validate({**cfg.model_dump(), "protocol": protocol})
        except ValueError as e:
            raise _fail(ValueError(f"--protocol: {e}")) from None

    async def go() -> dict:
        debater = get_model(cfg.debater) if cfg.protocol != "blind" else None
        judge = get_model(cfg.judge)
        try:
            graph = build_debate_graph(cfg, debater=debater, judge=judge)
            return await run_debate(graph, question, answer, context)
        finally:
            for m in (debater, judge):
                if m is not None:
                    await m.aclose()

    with console.status(f"{cfg.protocol}: {cfg.rounds} round(s)"):
        try:
            state = asyncio.run(go())
        except (ModelError, ValueError) as e:
            raise _fail(e) from None
    for t in state.get("transcript", []):
        who = t.speaker + (f" ({t.side})" if t.side else "")
        quotes = "".join(f" [{'verified' if q.verified else 'unverified'} quote]" for q in t.quotes)
        console.print(f"[bold]round {t.round} · {who}[/bold]{quotes}", highlight=False)
        console.print(t.text, highlight=False, markup=False)
    v = state["verdict"]
    runs = ", ".join(f"{p:.3f}" for p in v.p_runs)
    console.print(
        f"[bold]verdict[/bold] p(true) = {v.p_true:.3f} ({v.method}; runs {runs}); "
        f"{v.tokens} tokens, {v.seconds:.1f} s",
        highlight=False,
    )


@app.command("graph")
def graph_cmd(
    config: DebateConfigArg,
    out: Annotated[Path, typer.Option(help="output path without suffix; .mmd and .png are written")] = Path(
        "debate-graph"
    ),
) -> None:
    """Draw the configured graph: Mermaid text (.mmd) and a PNG."""
    from agents import wrap
    from agents.backends.scripted import ScriptedBackend
    from graphs.debate import build_debate_graph
    from graphs.draw import draw_png, mermaid

    cfg = _load_debate(config)
    # The drawing does not depend on the models: scripted stand-ins avoid loading any.
    stand_in = wrap(ScriptedBackend("scripted/stand-in"))
    graph = build_debate_graph(cfg, debater=stand_in, judge=stand_in)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".mmd").write_text(mermaid(graph))
    draw_png(graph, out.with_suffix(".png"))
    console.print(f"wrote {out.with_suffix('.mmd')} and {out.with_suffix('.png')}", highlight=False)


judge_app = typer.Typer(help="Trained judges: classifiers that read what a protocol shows the judge.")
app.add_typer(judge_app, name="judge")


@judge_app.command("train")
def judge_train_cmd(
    config: DebateConfigArg,
    out: Annotated[Path, typer.Option(help="directory to save the judge in (load it as classifier/<out>)")],
    questions: Annotated[int, typer.Option(help="judge-training questions (two rows each)")] = 300,
    split: Annotated[
        str, typer.Option(help="SciQ split; offline only `test` has support passages for the debaters")
    ] = "test",
    base: Annotated[str, typer.Option(help="classifier to fine-tune")] = "embedded/minilm",
    epochs: Annotated[float, typer.Option(help="training epochs")] = 3.0,
    seed: Annotated[int, typer.Option(help="question sampling and training seed")] = 0,
    concurrency: Annotated[int, typer.Option(help="debates in flight")] = 32,
) -> None:
    """Debate `questions` SciQ questions under CONFIG's protocol, then fine-tune a judge on gold."""
    from oversight.judges import collect_transcripts, train_judge
    from w2sg.data import load_sciq, split_by_question
    from w2sg.train import TrainConfig

    cfg = _load_debate(config)
    try:
        rows = split_by_question(load_sciq(split), {"judge": questions}, seed=seed)["judge"]
    except ValueError as e:
        raise _fail(e) from None

    async def debates() -> list:
        debater = get_model(cfg.debater) if cfg.protocol != "blind" else None
        try:
            return await collect_transcripts(cfg, debater, rows, concurrency=concurrency)
        finally:
            if debater is not None:
                await debater.aclose()

    with console.status(f"{len(rows)} {cfg.protocol} debates"):
        try:
            states = asyncio.run(debates())
        except (ModelError, ValueError) as e:
            raise _fail(e) from None
    tcfg = TrainConfig(lr=5e-5, epochs=epochs, batch_size=16, eval_every=20, seed=seed, device="auto")
    with console.status(f"fine-tuning {base} on {len(rows)} transcripts"):
        info = train_judge(
            cfg, rows, states, base_path=resolve_model_path(base), out_dir=out, train_cfg=tcfg, seed=seed
        )
    console.print(
        f"judge for {info.protocol}: val accuracy {info.val_accuracy:.3f} on {info.rows['val']} rows; "
        f"use it as `judge: classifier/{out}` with `judge_kind: trained`",
        highlight=False,
        soft_wrap=True,
    )


human_app = typer.Typer(help="Real humans as overseers: a queue in a SQLite file, answered any time.")
app.add_typer(human_app, name="human")


def _show_interaction(state: dict) -> None:
    for t in state.get("transcript", []):
        console.print(f"[bold]{t.speaker} ({t.kind})[/bold]", highlight=False)
        console.print(t.text, highlight=False, markup=False)
    if "verdict" in state:
        v = state["verdict"]
        console.print(f"[bold]verdict[/bold] p(true) = {v.p_true:.3f} ({v.method})", highlight=False)


@app.command("interact")
def interact_cmd(
    config: Annotated[Path, typer.Argument(help="interaction YAML (see configs/interact-*.yaml)")],
    question: Annotated[str, typer.Option("--question", "-q", help="the question")],
    answer: Annotated[str, typer.Option("--answer", "-a", help="the proposed answer to judge")],
    context: Annotated[str, typer.Option(help="privileged passage the assistant may use")] = "",
    gold: Annotated[bool | None, typer.Option(help="simulated overseer only: is the answer correct?")] = None,
    db: Annotated[Path | None, typer.Option(help="human overseer: the SQLite queue to wait in")] = None,
) -> None:
    """A strong assistant helps a weak overseer (model, simulated or human) judge one answer."""
    from graphs.interaction import InteractionConfig, build_interaction_graph, run_interaction
    from oversight import human

    try:
        cfg = load_config(config, InteractionConfig)
    except ConfigError as e:
        raise _fail(e) from None
    if cfg.overseer == "human":
        if db is None:
            raise _fail(ValueError("a human overseer waits in a queue: pass --db FILE"))
        tid = asyncio.run(human.start(db, cfg, question, answer, context))
        console.print(
            f"waiting for a person: thread {tid} in {db} (`w2sg human answer {db}`)", highlight=False
        )
        return
    if cfg.overseer == "simulated" and gold is None:
        raise _fail(ValueError("a simulated overseer needs --gold or --no-gold"))

    async def go() -> dict:
        assistant = get_model(cfg.assistant)
        overseer = get_model(cfg.overseer_model) if cfg.overseer == "model" else None
        try:
            graph = build_interaction_graph(cfg, assistant=assistant, overseer=overseer)
            return await run_interaction(graph, question, answer, context, gold=gold)
        finally:
            for m in (assistant, overseer):
                if m is not None:
                    await m.aclose()

    try:
        state = asyncio.run(go())
    except (ModelError, ValueError) as e:
        raise _fail(e) from None
    _show_interaction(state)


@human_app.command("queue")
def human_queue_cmd(db: Annotated[Path, typer.Argument(help="the SQLite queue")]) -> None:
    """List the items waiting for a person."""
    from oversight import human

    try:
        waiting = asyncio.run(human.pending(db))
    except FileNotFoundError as e:
        raise _fail(e) from None
    table = Table("thread", "question", "answer", "can ask", "last error")
    for p in waiting:
        table.add_row(p.thread_id, p.question, p.answer, "yes" if p.can_ask else "no", p.error or "")
    console.print(table)
    console.print(f"{len(waiting)} waiting", highlight=False)


@human_app.command("answer")
def human_answer_cmd(
    db: Annotated[Path, typer.Argument(help="the SQLite queue")],
    thread: Annotated[str | None, typer.Option(help="which item; default: the oldest waiting")] = None,
    verdict: Annotated[float | None, typer.Option(help="p(true) in [0, 1]; omit to be asked")] = None,
    ask: Annotated[str | None, typer.Option(help="a follow-up question for the assistant instead")] = None,
) -> None:
    """Show an item's transcript and resume it with your verdict (or a follow-up question)."""
    from oversight import human

    try:
        waiting = asyncio.run(human.pending(db))
    except FileNotFoundError as e:
        raise _fail(e) from None
    if not waiting:
        console.print("nothing is waiting", highlight=False)
        return
    item = next((p for p in waiting if p.thread_id == thread), None) if thread else waiting[0]
    if item is None:
        raise _fail(ValueError(f"{db}: thread {thread!r} is not waiting for a person"))
    console.print(f"[bold]Question:[/bold] {item.question}\n[bold]Proposed answer:[/bold] {item.answer}")
    if item.context:
        console.print(f"[bold]Reference passage:[/bold] {item.context}")
    console.print(item.transcript, highlight=False, markup=False)
    if verdict is None and ask is None:
        raw = typer.prompt("p(true) in [0, 1]" + (", or a question starting with ?" if item.can_ask else ""))
        reply: dict = {"ask": raw[1:].strip()} if raw.startswith("?") else {"verdict": _number(raw)}
    else:
        reply = {"ask": ask} if ask is not None else {"verdict": verdict}
    try:
        state = asyncio.run(human.answer(db, item.thread_id, reply))
    except (ValueError, ModelError) as e:
        raise _fail(ValueError(f"{e} (nothing was changed)")) from None
    if "verdict" in state:
        console.print(f"recorded p(true) = {state['verdict'].p_true:.3f} for thread {item.thread_id}")
    else:
        console.print(f"asked; the assistant answered. Thread {item.thread_id} waits for your verdict.")


def _number(raw: str) -> float | str:
    try:
        return float(raw)
    except ValueError:
        return raw  # rejected with a clear message by the validator


def main() -> None:
    app()


if __name__ == "__main__":
    main()
