"""`w2sg`: one CLI whose subcommands map to config files."""

from __future__ import annotations

import asyncio
import logging
import os
import time
from pathlib import Path
from typing import Annotated

import typer
from rich.logging import RichHandler
from rich.table import Table

from agents import ConfigError, ModelError, ModelSpec, get_model, load_config
from oversight import cli_graphs, cli_ladder, cli_train  # noqa: F401  (they register their commands)
from oversight.cli_app import app, console, err_console
from oversight.cli_app import fail as _fail
from oversight.config import ExperimentConfig

models_app = typer.Typer(help="Inspect and check configured models.", no_args_is_help=True)
app.add_typer(models_app, name="models")

CHECK_PROMPT = "In one sentence: why do objects fall towards the Earth?"
JUDGE_PROMPT = (
    "Question: What element is present in all organic molecules?\nAnswer: carbon\n"
    "Is the answer correct? Reply Yes or No."
)


@app.callback()
def _root(verbose: Annotated[bool, typer.Option("--verbose", "-v", help="log at INFO")] = False) -> None:
    if not verbose:  # our own status lines show progress; transformers' bars would interleave
        os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
        os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")  # e.g. each new judge head's load report
    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING,
        format="%(message)s",
        handlers=[RichHandler(console=err_console, show_path=False)],
    )
    for noisy in ("httpx", "httpx2", "openai"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


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


def main() -> None:
    app()


if __name__ == "__main__":
    main()
