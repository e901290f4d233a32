"""Labels as inspect_ai eval logs (`w2sg export --format inspect`), for `inspect view`.

One `.eval` log per (protocol, config hash) in the output folder, one sample per label: input is
the question and the answer judged, messages are the transcript (each speaker an assistant message
named in its metadata; the judge's verdict last), scores are the verdict (`p_true`) and, where gold
is known, whether the verdict (p >= 0.5) agrees with it (`correct`, C / I), and metadata is the
label's provenance. Logs are built and written through inspect_ai's own log API
(`inspect_ai.log`), so `inspect_ai.log.read_eval_log` reads them back. The record holds model names
only, never their keys or tokens (`oversight.labelling.provenance`), and so does the log."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from itertools import groupby
from pathlib import Path
from typing import Any

# What the transcript and verdict become; the rest of the record (and the row's key) is metadata.
_SHOWN = ("question", "answer", "transcript", "verdict")


def import_inspect() -> Any:
    """inspect_ai's log API, or one clear error naming the extra that installs it."""
    try:
        import inspect_ai.log
    except ImportError:
        raise ValueError(
            "inspect export needs inspect_ai: pip install 'w2sg-oversight[inspect]' (the `inspect` extra)"
        ) from None
    return inspect_ai.log


def write_inspect(rows: list[dict[str, Any]], folder: Path, log_api: Any) -> None:
    """One eval log per (protocol, config hash) under the new `folder` (rows come sorted by both)."""
    folder.mkdir()
    created = datetime.now(UTC).isoformat(timespec="seconds")
    for (protocol, chash), group in groupby(rows, key=lambda r: (r["protocol"], r["config_hash"])):
        log = _eval_log(protocol, chash, list(group), created, log_api)
        name = re.sub(r"[^\w.-]+", "-", f"{protocol}_{chash}")  # a config hash from elsewhere may hold '/'
        log_api.write_eval_log(log, str(folder / f"{name}.eval"))


def _eval_log(protocol: str, chash: str, rows: list[dict[str, Any]], created: str, log_api: Any) -> Any:
    """The header (task = protocol, model = the judge's) and results of one protocol's labels."""
    samples = [_sample(r) for r in rows]
    models = next((r["models"] for r in rows if r.get("models")), {})
    spec = log_api.EvalSpec(
        created=created,
        task=f"w2sg/{protocol}",
        task_id=chash,
        run_id=chash,
        dataset=log_api.EvalDataset(name=protocol, samples=len(samples), sample_ids=[s.id for s in samples]),
        model=models.get("judge") or next(iter(models.values()), "none"),
        config=log_api.EvalConfig(),
        metadata={"protocol": protocol, "config_hash": chash, "models": models, "exported_by": "w2sg"},
    )
    results = log_api.EvalResults(
        total_samples=len(samples),
        completed_samples=sum(r["status"] == "ok" for r in rows),
        scores=_results(samples, log_api),
    )
    stats = log_api.EvalStats(started_at=created, completed_at=created)  # the export's time, not the run's
    return log_api.EvalLog(status="success", eval=spec, results=results, stats=stats, samples=samples)


def _sample(row: dict[str, Any]) -> Any:
    from inspect_ai.log import EvalSample
    from inspect_ai.model import ChatMessageUser

    question = f"{row.get('question', '')}\n\nProposed answer: {row.get('answer', '')}".strip()
    gold = row.get("gold")
    return EvalSample(
        id=row["example_id"],
        epoch=1,
        input=question,
        target="" if gold is None else ("true" if gold else "false"),
        messages=[ChatMessageUser(content=question, source="input"), *_messages(row)],
        scores=_scores(row),
        metadata={k: v for k, v in row.items() if k not in _SHOWN},
        total_time=(row.get("verdict") or {}).get("seconds"),
    )


def _messages(row: dict[str, Any]) -> list[Any]:
    """Each turn as an assistant message (inspect knows one assistant, so its speaker, side and
    round go in a header and its metadata); then the verdict, or the failure that stopped the row."""
    from inspect_ai.model import ChatMessageAssistant, ChatMessageSystem

    models = row.get("models") or {}
    out = [_turn(t, _model(models, t["speaker"])) for t in row.get("transcript") or []]
    verdict = row.get("verdict")
    if verdict:
        text = f"[verdict: {verdict.get('judge', 'judge')}] p(answer is correct) = {verdict['p_true']:.3f}"
        out.append(ChatMessageAssistant(content=text, model=models.get("judge"), metadata=verdict))
    elif row.get("error"):
        out.append(ChatMessageSystem(content=f"[failed] {row['error']}"))
    return out


def _turn(turn: dict[str, Any], model: str | None) -> Any:
    from inspect_ai.model import ChatMessageAssistant

    who = turn["speaker"] + (f" ({turn['side']})" if turn.get("side") else "")
    kind = turn.get("kind", "argument")
    meta = {k: turn.get(k) for k in ("speaker", "side", "round", "kind", "tokens", "seconds")}
    if turn.get("quotes"):
        meta["quotes"] = turn["quotes"]
    header = f"[{who}, round {turn['round']}, {kind}]"
    return ChatMessageAssistant(
        content=f"{header}\n\n{turn['text']}", model=model, metadata=meta, source="generate"
    )


def _model(models: dict[str, str], speaker: str) -> str | None:
    """The model a speaker's turns came from: its own entry (per-side debaters: debater_correct),
    else its role's (debater_correct -> debater, agent_2 -> agent, the judge's questions -> judge)."""
    role = "judge" if speaker.startswith(("judge", "overseer")) else re.sub(r"_\w+$", "", speaker)
    return models.get(speaker) or models.get(role)


def _scores(row: dict[str, Any]) -> dict[str, Any] | None:
    """`p_true` always (for a label with a verdict); `correct` where gold is known."""
    from inspect_ai.scorer import CORRECT, INCORRECT, Score

    p = row.get("p_true")
    if p is None:
        return None  # a failed row: no verdict to score
    scores = {"p_true": Score(value=p, answer="true" if p >= 0.5 else "false")}
    gold = row.get("gold")
    if gold is not None:
        scores["correct"] = Score(value=CORRECT if (p >= 0.5) == bool(gold) else INCORRECT)
    return scores


def _results(samples: list[Any], log_api: Any) -> list[Any]:
    """Per-score means (a C / I score as accuracy), so the log listing shows them; accuracy against
    gold first, where known, as the viewer headlines the first."""
    from inspect_ai.scorer import value_to_float

    to_float, out = value_to_float(), []
    for name in sorted({k for s in samples for k in s.scores or {}}):  # "correct" < "p_true"
        values = [to_float(s.scores[name].value) for s in samples if s.scores and name in s.scores]
        metric = "accuracy" if name == "correct" else "mean"
        out.append(
            log_api.EvalScore(
                name=name,
                scorer=name,
                scored_samples=len(values),
                unscored_samples=len(samples) - len(values),
                metrics={metric: log_api.EvalMetric(name=metric, value=sum(values) / len(values))},
            )
        )
    return out
