"""`w2sg models list | check`, `w2sg chat`: the model layer's commands."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Annotated

import typer
from pydantic import Field
from rich.markup import escape
from rich.table import Table

from agents import ModelSpec, get_model, load_config
from agents.backends.classifier import classifier_dir
from agents.config import Config
from oversight.cli.app import BUGS, USER_ERRORS, SetOpt, app, console, err_console

models_app = typer.Typer(help="Inspect and check configured models.", no_args_is_help=True)
app.add_typer(models_app, name="models", rich_help_panel="Models")

CHECK_PROMPT = "In one sentence: why do objects fall towards the Earth?"
# Shaped as the protocols' judge prompts ("Question: ...\nProposed answer: ..."), so that a judge
# that reads only those (the `extractive` quote-weighing judge) scores it too.
JUDGE_PROMPT = (
    "Question: What element is present in all organic molecules?\nProposed answer: carbon\n"
    "Is the answer correct? Reply Yes or No."
)


class ModelsSection(Config):
    """The `models:` mapping of any config (an experiment, label, run, ... file); the rest of the
    file is left to the command that runs it."""

    models: dict[str, ModelSpec] = Field(default_factory=dict)


def _load_models(config: Path, overrides: list[str] | None, *, note: bool = True) -> dict[str, ModelSpec]:
    """CONFIG's `models:` with `--set models.<name>.<field>=...` applied; empty (and, with `note`,
    said so) when the file has none."""
    models = load_config(config, ModelsSection, only=("models",), overrides=overrides or ()).models
    if not models and note:
        console.print(
            f"{config}: no `models:` mapping, so nothing to list or check (model strings written "
            "elsewhere in a config are resolved when its command loads it)",
            highlight=False,
            soft_wrap=True,
        )
    return models


ModelsConfigArg = Annotated[Path, typer.Argument(help="any YAML config; only its `models:` mapping is read")]


@models_app.command("list")
def models_list(
    config: Annotated[
        str,
        typer.Argument(
            help="any YAML config (its `models:` mapping is listed), or a server's base URL "
            "(http://127.0.0.1:8000/v1): the model ids it serves, what `openai: {model: ...}` takes"
        ),
    ],
    api_key_env: Annotated[
        str, typer.Option(help="with a URL: the env var holding its key")
    ] = "OPENAI_API_KEY",
    set_: SetOpt = None,
) -> None:
    """List the models in a config's `models:` mapping (a config without one: a note, exit 0), or
    the model ids an OpenAI-compatible server serves."""
    if config.startswith(("http://", "https://")):
        from agents.backends.openai_compat import served_models

        for model_id in asyncio.run(served_models(config, api_key_env)):
            console.print(model_id, highlight=False, markup=False, soft_wrap=True)
        return
    models = _load_models(Path(config), set_)
    if not models:
        return
    table = Table("name", "model", "provider", "concurrency")
    for key, spec in models.items():
        table.add_row(key, spec.name, spec.provider, str(spec.max_concurrency or "backend default"))
    console.print(table)


@models_app.command("check")
def models_check(
    config: ModelsConfigArg,
    only: Annotated[list[str] | None, typer.Option(help="check only these model names")] = None,
    prompt: Annotated[str, typer.Option(help="prompt for the generate call")] = CHECK_PROMPT,
    max_tokens: Annotated[int, typer.Option(help="tokens to generate")] = 32,
    set_: SetOpt = None,
) -> None:
    """Call each model of a config's `models:` once (generate + Yes/No choice_probs); print latency
    and tokens/s. A model that answers only protocol prompts (the `extractive` reader) is asked
    one; a call a model cannot make (a reader judging, a classifier generating) or a judge not
    trained yet is shown as "not checkable (why)"; a model that fails exits 1. Only `models:` is
    read, so any config works; one without it: a note, exit 0."""
    models = _load_models(config, set_)
    if not models and not only:
        return
    names = only or list(models)
    unknown = [n for n in names if n not in models]
    if unknown:
        raise ValueError(f"{config}: no model named {unknown}; configured: {list(models)}")
    table = Table("name", "model", "load s", "latency s", "tokens", "tok/s", "p(Yes)", "via")
    replies: list[str] = []
    failed = False
    for name in names:
        with console.status(f"checking {name} ({models[name].name})"):
            try:
                row = asyncio.run(_check_one(models[name], prompt, max_tokens))
            except USER_ERRORS as e:  # said per model; the others are still checked
                if isinstance(e, BUGS):
                    raise
                failed = True
                err_console.print(f"[red]{escape(name)}: {escape(str(e))}[/red]", highlight=False)
                continue
        replies.append(f"[bold]{escape(name)}:[/bold] {escape(row.pop())}")
        table.add_row(name, *row)
    console.print(table)
    for line in replies:
        console.print(line, highlight=False)
    if failed:
        raise typer.Exit(1)


def _untrained(spec: ModelSpec) -> str | None:
    """Why a trained judge cannot be checked yet: its folder is made by `w2sg judge train` (or `w2sg
    run`), so a shipped config names one that does not exist until then."""
    folder = classifier_dir(spec.name)
    if folder is None or folder.is_dir():
        return None
    return f"not trained yet: no folder {folder} (`w2sg judge train` makes it)"


async def _check_one(spec: ModelSpec, prompt: str, max_tokens: int) -> list[str]:
    """The table row of one model, its reply last; a call it cannot make is "not checkable (why)"."""
    if (why := _untrained(spec)) is not None:
        return [spec.name, *["-"] * 5, "not checkable", f"not checkable ({why})"]
    t0 = time.perf_counter()
    model = get_model(spec)
    load_s = time.perf_counter() - t0
    cannot: dict[str, str] = getattr(model.api, "not_checkable", {})
    async with model:
        if "generate" in cannot:
            timing, reply = ["-", "-", "-"], f"not checkable ({cannot['generate']})"
        else:  # a model that answers only protocol prompts is asked one
            c = await model.generate(getattr(model.api, "check_prompt", prompt), max_tokens=max_tokens)
            tps = c.usage.output_tokens / c.seconds if c.seconds > 0 else float("nan")
            timing = [f"{c.seconds:.2f}", str(c.usage.output_tokens), f"{tps:.1f}"]
            reply = c.text.strip().replace("\n", " ")
        if "choice_probs" in cannot:
            scored = ["not checkable", cannot["choice_probs"]]
        else:
            p = await model.choice_probs(JUDGE_PROMPT, ["Yes", "No"])
            scored = [f"{p['Yes']:.3f}", p.method]
    return [spec.name, f"{load_s:.2f}", *timing, *scored, reply]


@app.command(rich_help_panel="Models")
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
    set_: SetOpt = None,
) -> None:
    """One chat turn with a model; optionally score choices for the same prompt."""
    if set_ and config is None:
        raise ValueError("--set changes a config: give --config too")
    models = _load_models(config, set_, note=False) if config else {}
    spec = models[model] if model in models else ModelSpec(name=model)
    messages = ([{"role": "system", "content": system}] if system else []) + [
        {"role": "user", "content": message}
    ]

    async def run() -> None:
        async with get_model(spec) as m:
            with console.status(f"{spec.name} is thinking"):
                c = await m.generate(messages, max_tokens=max_tokens, temperature=temperature, seed=seed)
            # The reply is shown before the choices are scored: a scoring failure must not lose it.
            # Model and user text is escaped: a reply that reads "[bold]" is shown as written.
            console.print(f"[bold]user:[/bold] {escape(message)}", highlight=False)
            console.print(f"[bold]{escape(spec.name)}:[/bold] {escape(c.text.strip())}", highlight=False)
            console.print(
                f"[dim]{c.usage.input_tokens} in / {c.usage.output_tokens} out tokens, "
                f"{c.seconds:.2f}s, finish={c.finish_reason}[/dim]"
            )
            if choices:
                with console.status(f"{spec.name}: scoring {choices}"):
                    p = await m.choice_probs(messages, [s.strip() for s in choices.split(",")])
                shown = ", ".join(f"{k}={v:.3f}" for k, v in p.probs.items())
                console.print(f"[bold]choice probs[/bold] ({p.method}): {shown}", highlight=False)

    asyncio.run(run())
