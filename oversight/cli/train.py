"""`w2sg train | ensemble | icl | compare`: the training core's commands."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
import yaml
from pydantic import ValidationError
from rich import box
from rich.console import Group
from rich.table import Table
from rich.text import Text

from agents import ConfigError, ModelSpec, get_model
from agents.config import format_validation_error, load_yaml
from agents.names import check_config_models, model_name_problem, resolve_model_path
from oversight.cli.app import SetOpt, TrackOpt, app, check_models, console, load, with_tracking
from w2sg.run_folder import is_main_process

if TYPE_CHECKING:
    from w2sg.experiment import W2SGConfig
    from w2sg.metrics import Estimate
    from w2sg.results import ExperimentResult, SeedsResult


def _load_w2sg(
    config: Path,
    device: str | None,
    overrides: list[str] | None,
    *,
    check: bool = True,
    track: list[str] | None = None,
) -> W2SGConfig:
    """The experiment config with `--set` overrides; --device is `--set` of both train sections,
    --track of `tracking`."""
    from w2sg.experiment import W2SGConfig

    both = [f"{section}.device={device}" for section in ("weak_train", "strong_train")] if device else []
    return load(config, W2SGConfig, check=check, overrides=[*with_tracking(overrides, track), *both])


ConfigArg = Annotated[Path, typer.Argument(help="W2SG experiment YAML (see configs/w2sg-sciq.yaml)")]
ForceOpt = Annotated[bool, typer.Option(help="rerun even if the run folder is complete")]
DeviceOpt = Annotated[str | None, typer.Option(help="auto, cpu or cuda: overrides both train sections")]


def summary(e: ExperimentResult, run_dir: Path) -> Group:
    """What a person reads at the end of a run, in 80 columns: per label source and loss, the
    labels' accuracy, the student and its PGR (95% CIs; under each, the same on ROC AUC), and with
    a dev split the student and PGR on dev (point figures); a mark for a PGR that reads no regime,
    then the footnotes, the regime, any model at chance and any collapsed student in words. The
    full tables, every interval and the words behind each mark are in results.md."""
    from w2sg.report import chance_by_source, chance_lines, collapse_lines, dev_regime_lines, regime_lines

    floors = {s.source: s for s in e.sources}
    chance, chance_dev = chance_by_source(e), chance_by_source(e, dev=True)
    notes = regime_lines({f.source: f.floor for f in e.sources}, e.ceiling, chance=chance)
    title = f"ceiling {e.ceiling}{_auc_note(e.ceiling_auc)}\ntest {e.sizes['test']} rows · 95% CIs"
    dev = e.ceiling_dev
    if dev is not None:  # choose settings on these columns, not on test
        title += f"\ndev ceiling {dev}{_auc_note(e.ceiling_auc_dev)} · dev {e.sizes.get('dev', 0)} rows"
        notes += dev_regime_lines(e)
    rows = []
    for s in e.students:
        f = floors[s.source]
        student = _cell(s.accuracy, s.auc) + ("\ncollapsed" if s.collapsed else "")
        gap = _gap_cell(
            (s.pgr, f.floor, e.ceiling), (s.auc_pgr, f.floor_auc, e.ceiling_auc), s.source in chance
        )
        on_dev: list[str] = []
        if dev is not None:  # point figures: with intervals, six columns do not fit 80
            on_auc = (s.auc_pgr_dev, f.floor_auc_dev, e.ceiling_auc_dev)
            on_dev = [
                _cell(s.accuracy_dev, s.auc_dev, point=True),
                _gap_cell((s.pgr_dev, f.floor_dev, dev), on_auc, s.source in chance_dev, point=True),
            ]
        rows.append([f"{s.source}\n{s.loss}", _short(f.labels.accuracy), student, gap, *on_dev])
    footnotes = _footnotes(rows)
    if dev is not None:
        footnotes.append("dev: choose settings on these columns, not on test")
    table = _table()
    dev_cols = ("dev\nacc", "dev\nPGR") if dev is not None else ()
    for name in ("labels", "student\n(AUC)", "PGR\n(on AUC)", *dev_cols):
        table.add_column(name, no_wrap=True)
    for row in rows:
        table.add_row(*row)
    return _framed(
        title, table, [*footnotes, *notes, *chance_lines(e), *collapse_lines(e), _all_figures(run_dir)]
    )


def seeds_summary(r: SeedsResult, run_dir: Path) -> Group:
    """The aggregate over seeds at the end of a run with `seeds`, in 80 columns: per label source
    and loss, the floor, the student (the SD between seeds under it) and its PGR, each a mean over
    seeds with its 95% interval over seeds and questions, with the same on AUC under it; each
    seed's figures are in results.md."""
    from w2sg.report import seeds_chance, seeds_notes

    floors = {f.source: f for f in r.sources}
    chance = seeds_chance(r)
    title = f"seeds {', '.join(map(str, r.seeds))} · ceiling {r.ceiling.mean}{_auc_note(r.ceiling_auc.mean)}"
    title += "\nmeans over seeds · 95% CIs over seeds and questions"
    rows = []
    for s in r.students:
        f = floors[s.source]
        floor = _cell(f.floor.mean, f.floor_auc.mean) + ("" if f.floor_split == "test" else "†")
        student = _cell(s.accuracy.mean, s.auc.mean) + f"\nSD {s.accuracy.sd:.3f} ({s.auc.sd:.3f})"
        ceiling = (r.ceiling.mean, r.ceiling_auc.mean)
        at = s.source in chance
        gap = _gap_cell((s.pgr, f.floor.mean, ceiling[0]), (s.auc_pgr, f.floor_auc.mean, ceiling[1]), at)
        rows.append([f"{s.source}\n{s.loss}", floor, student, gap])
    footnotes = _footnotes(rows)
    if any(f.floor_split != "test" for f in r.sources):
        footnotes.append("† floor on the strong split it labelled (no test predictions)")
    footnotes.append("SD between seeds (on AUC in brackets)")
    table = _table()
    for name in ("floor\n(AUC)", "student\n(AUC)", "PGR\n(on AUC)"):
        table.add_column(name, no_wrap=True)
    for row in rows:
        table.add_row(*row)
    return _framed(
        title, table, [*footnotes, *seeds_notes(r), _all_figures(run_dir, "Each seed and every figure")]
    )


def _table() -> Table:
    """A summary table with its first column, the label source and loss. With short estimates
    (`short_estimate`), point figures on dev and marks for footnotes (`REGIME_MARKS`), every
    summary fits 80 columns; figure cells never wrap."""
    table = Table(
        box=box.SIMPLE_HEAD,
        padding=(0, 0),  # the box's own space divides the columns: two would not fit six in 80
        pad_edge=False,
    )
    # A long source name folds over lines (the loss under it), so that the figures keep the width.
    table.add_column("source\nloss", min_width=12, max_width=12, overflow="fold")
    return table


def _framed(title: str, table: Table, notes: list[str]) -> Group:
    """The title over the table and the notes under it, each wrapped at words to the terminal (a
    table's own title and caption would wrap to the table's width)."""
    return Group(Text(title), table, Text("\n".join(notes)))


def _footnotes(rows: list[list[str]]) -> list[str]:
    from w2sg.report import regime_footnotes

    return regime_footnotes("\n".join(c for row in rows for c in row[1:]))


def _all_figures(run_dir: Path, what: str = "All figures") -> str:
    return f"{what}: {run_dir}/results.md"


def _short(e: Estimate | None, point: bool = False) -> str:
    """An estimate in a narrow cell (`short_estimate`), or with `point` its value alone."""
    from w2sg.report import short_estimate

    return ("-" if e is None else f"{e.value:.3f}") if point else short_estimate(e)


def _auc_note(auc: Estimate | None) -> str:
    return "" if auc is None else f" · AUC {auc}"


def _cell(acc: Estimate | None, auc: Estimate | None, point: bool = False) -> str:
    """A figure on accuracy and under it on AUC (none in results written before AUC was measured)."""
    return _short(acc, point) + ("" if auc is None else f"\n{_short(auc, point)}")


Gap = tuple["Estimate | None", "Estimate | None", "Estimate | None"]


def _gap_cell(on_acc: Gap, on_auc: Gap, chance: bool = False, point: bool = False) -> str:
    """PGR (pgr, floor, ceiling) as `pgr_cell` shows it in short, and under it PGR on AUC, its regime
    read from the AUCs' intervals; `chance`: the floor or the ceiling is at chance."""
    from w2sg.report import pgr_cell

    def one(gap: Gap) -> str:
        pgr, floor, ceiling = gap
        return (
            "-"
            if ceiling is None
            else pgr_cell(pgr, floor, ceiling, lambda x: _short(x, point), chance, short=True)
        )

    text = one(on_acc)
    return text if on_auc[0] is None or on_auc[2] is None else f"{text}\n{one(on_auc)}"


def _run_and_print(cfg: W2SGConfig, force: bool, status: str) -> None:
    from oversight.api import run_w2sg

    seeds = "" if cfg.seeds is None else f", seeds {cfg.seeds}"
    with console.status(f"{status}{seeds}; -v shows each step"):
        result = run_w2sg(cfg, force=force)
    print_summary(result, cfg.out_dir)


def print_summary(result: ExperimentResult | SeedsResult, out_dir: Path) -> None:
    """The console summary of a finished run, one seed or the aggregate over seeds."""
    from w2sg.results import SeedsResult

    if not is_main_process():  # under torchrun every process has the result; one prints it
        return
    run_dir = out_dir / result.run_id
    shown = seeds_summary(result, run_dir) if isinstance(result, SeedsResult) else summary(result, run_dir)
    console.print(shown, highlight=False)


@app.command("train", rich_help_panel="Experiments")
def train_cmd(
    config: ConfigArg,
    force: ForceOpt = False,
    device: DeviceOpt = None,
    set_: SetOpt = None,
    track: TrackOpt = None,
) -> None:
    """Weak floor, weak labels, strong students per label source and loss, ceiling, PGR."""
    _run_and_print(
        _load_w2sg(config, device, set_, track=track), force, "training (weak teacher, ceiling, students)"
    )


@app.command("ensemble", rich_help_panel="Experiments")
def ensemble_cmd(
    config: ConfigArg,
    force: ForceOpt = False,
    device: DeviceOpt = None,
    set_: SetOpt = None,
    track: TrackOpt = None,
) -> None:
    """Single weak teacher vs bagging vs boosting: label accuracy, student accuracy and PGR.

    Runs the experiment with every ensemble in the config's `ensembles:` as a label source."""
    cfg = _load_w2sg(config, device, set_, track=track)
    if not cfg.ensembles:
        raise ConfigError(f"{config}: field 'ensembles': add at least one (method: bagging|boosting)")
    sources = list(dict.fromkeys(["weak", *cfg.label_sources, *(e.source for e in cfg.ensembles)]))
    cfg = cfg.model_copy(update={"label_sources": sources})
    _run_and_print(cfg, force, "training weak teachers, ensembles, students and the ceiling")


@app.command("icl", rich_help_panel="Experiments")
def icl_cmd(
    config: ConfigArg,
    force: ForceOpt = False,
    device: DeviceOpt = None,
    model: Annotated[
        str | None,
        typer.Option(
            help="override icl.model: a model string (openai/<m>@<url>) or a spec mapping in YAML, "
            "e.g. '{name: openai/m, openai: {model: m, base_urls: [URL], chat_template: DIR}}'"
        ),
    ] = None,
    set_: SetOpt = None,
) -> None:
    """In-context-learning W2SG: ICL accuracy per demo selector and label source, vs gold demos."""
    from w2sg.icl import ICLConfig
    from w2sg.icl_experiment import run_icl
    from w2sg.report import icl_table

    cfg = _load_w2sg(config, device, set_, check=False)
    icl = cfg.icl or ICLConfig()
    if model is not None:
        icl = icl.model_copy(update={"model": _model_option(model)})
    cfg = cfg.model_copy(update={"icl": icl})
    # Checked once the ICL section is final: its defaults when the file has none, not --model.
    check_models(cfg, config, ignore=("icl.model",) if model is not None else ())
    llm = get_model(icl_spec(icl.model, "--model" if model is not None else f"{config}: icl.model"))
    try:
        result = run_icl(cfg, llm, resolve=resolve_model_path, force=force)
    finally:
        asyncio.run(llm.aclose())
    console.print(icl_table(result), highlight=False)
    console.print(f"[dim]results in {cfg.out_dir / result.run_id}[/dim]")


def _model_option(value: str) -> str | dict:
    """`--model`: a model string, or (starting with "{") a spec mapping written in YAML."""
    if not value.lstrip().startswith("{"):
        if (problem := model_name_problem(value)) is not None:
            raise ValueError(f"--model: {problem}")
        return value
    try:
        spec = load_yaml(value)
    except yaml.YAMLError as e:
        raise ValueError(f"--model: not a YAML mapping: {e}") from None
    if not isinstance(spec, dict):
        raise ValueError(f"--model: not a YAML mapping: {value!r}")
    return spec


def icl_spec(model: str | dict, where: str) -> ModelSpec:
    """`icl.model` as the model layer's spec: a model string, or a spec mapping validated here (the
    training core knows nothing of the model layer), its errors naming `where` it was given."""
    if isinstance(model, str):
        return ModelSpec(name=model)
    try:
        spec = ModelSpec.model_validate(model)
    except ValidationError as e:
        raise ConfigError(format_validation_error(e, where, ModelSpec, "model spec")) from None
    check_config_models(spec, where)
    return spec


@app.command("compare", rich_help_panel="Experiments")
def compare_cmd(
    run_dir: Annotated[Path, typer.Argument(help="a run folder holding predictions.npz")],
    a: Annotated[str, typer.Argument(help="a column, e.g. student__weak_p_true_with_support__xent")],
    b: Annotated[str, typer.Argument(help="the column to compare with, on the same test rows")],
    n_boot: Annotated[int, typer.Option(help="bootstrap resamples")] = 10000,
    n_perm: Annotated[
        int, typer.Option(help="sign flips of the permutation test (exact when fewer)")
    ] = 10000,
) -> None:
    """Paired test-accuracy difference a − b with a 95% CI (questions resampled, both columns jointly)
    and the two-sided p of a paired permutation test (each question's a/b signs flipped together)."""
    import numpy as np

    from w2sg.metrics import correct, paired_gain, paired_permutation

    path = run_dir / "predictions.npz"
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such file (run `w2sg train` first)")
    z = np.load(path)
    # strong__ columns are floors on the strong split (for seed aggregates), not test rows.
    columns = [f for f in z.files if f not in ("ids", "qids", "gold") and not f.startswith("strong__")]
    for col in (a, b):
        if col not in columns:
            raise ValueError(f"{path}: no column {col!r}; columns: {', '.join(columns)}")
    ok_a, ok_b = correct(z[a], z["gold"]), correct(z[b], z["gold"])
    # Folders written before question ids were saved resample rows (and say so).
    qids = z["qids"] if "qids" in z.files else None
    d = paired_gain(ok_a, ok_b, qids, n_boot=n_boot)
    p = paired_permutation(ok_a, ok_b, qids, n_perm=n_perm)
    unit = f"{len(set(qids.tolist()))} questions" if qids is not None else "rows: no qids in this folder"
    console.print(
        f"{a}: {ok_a.mean():.3f}  {b}: {ok_b.mean():.3f}  difference {d.value:+.3f} "
        f"[{d.lo:+.3f}, {d.hi:+.3f}] (95% paired bootstrap over {unit}; {d.n} rows), "
        f"permutation p = {p:.4f}",
        highlight=False,
        soft_wrap=True,
    )
