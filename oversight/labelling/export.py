"""Export labels with their provenance: JSONL and CSV always; parquet (pyarrow), a Hugging Face
`datasets` folder and a folder of inspect_ai eval logs (`oversight.labelling.export_inspect`) when
those packages are installed. `FORMATS` is the one registry of formats.

Each label carries where its row came from in the user's data: `source_id` (the record's `id`
column, else its row in the file from 0) and `source` (the record's columns but the passage),
nested in JSONL and flattened to `source.<column>` columns in CSV, parquet and hf (the names
pandas' `json_normalize` and `datasets`' `flatten` give). Labels stored before rows carried it
export with `source_id` null and no source columns.

Nothing the user owns is clobbered: an existing output is replaced only with `force`, and never
when it is the wrong kind (a folder where a file goes, a file where a folder goes). The export is
written under a temporary name beside the target and moved into place only once complete, so an
interrupted export leaves neither a half-written output nor a temporary file behind."""

from __future__ import annotations

import csv
import json
import os
import shutil
import sqlite3
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any, NamedTuple

from oversight.labelling import export_inspect
from oversight.labelling.sqlite import check_store, read, tables
from oversight.labelling.store import COLUMNS, LabelRow, row_of


class ExportError(ValueError):
    """The export would overwrite or misplace something; the message names the path."""


def export_rows(
    store_path: str | Path, protocol: str | None = None, config_hash: str | None = None
) -> list[dict[str, Any]]:
    """One dict per label: ids, status, p_true, error, then the provenance record. The store is
    only read (`oversight.labelling.sqlite.read`): a file that is not a label store is refused
    untouched."""

    def rows(db: sqlite3.Connection) -> list[LabelRow]:
        check_store(db, store_path)
        if "labels" not in tables(db):
            return []  # a queue whose people have given no verdict yet
        sql = (
            f"SELECT {COLUMNS} FROM labels WHERE (?1 IS NULL OR protocol = ?1) AND "
            "(?2 IS NULL OR config_hash = ?2) ORDER BY protocol, config_hash, example_id"
        )
        return [row_of(r) for r in db.execute(sql, (protocol, config_hash))]

    got = read(store_path, rows)
    if not got:
        raise ValueError(f"{store_path}: no labels for protocol={protocol} config_hash={config_hash}")
    return [
        {
            "example_id": r.example_id,
            "source_id": None,  # the record has it, but for labels stored before rows carried it
            "protocol": r.protocol,
            "config_hash": r.config_hash,
            "status": r.status,
            "p_true": r.p_true,
            "error": r.error,
            "source": {},
            **r.record,
        }
        for r in got
    ]


def check_target(out: str | Path, fmt: str, *, force: bool = False) -> Path:
    """Raise ExportError unless `out` may receive a `fmt` export: it does not exist, or it is of
    the right kind (a file for jsonl / csv / parquet, a folder for hf / inspect) and `force` is set."""
    if fmt not in FORMATS:
        raise ExportError(f"format must be {', '.join(FORMATS)}, got {fmt!r}")
    out = Path(out)
    want_dir = FORMATS[fmt].folder
    if not (out.exists() or out.is_symlink()):
        return out
    if out.is_dir() != want_dir or not (out.is_dir() or out.is_file()):
        kind = "a folder" if out.is_dir() else "a file" if out.is_file() else "not a plain file"
        need = "a folder" if want_dir else "a file"
        raise ExportError(
            f"{out} is {kind}, but --format {fmt} writes {need}; choose another --out "
            "(it is not replaced, even with --force)"
        )
    if not force:
        raise ExportError(f"{out} exists; pass --force to replace it")
    return out


def write_export(rows: list[dict[str, Any]], out: str | Path, fmt: str, *, force: bool = False) -> Path:
    """Write `rows` to `out` as `fmt`; see the module docstring for what is never overwritten."""
    out = check_target(out, fmt, force=force)
    form = FORMATS[fmt]
    writer = form.load() if form.load else None  # a missing package is refused before anything is written
    out.parent.mkdir(parents=True, exist_ok=True)
    # Hidden and unique, beside the target: same filesystem (so the move is a rename), and two
    # exports never share a temporary.
    tmp = out.with_name(f".{out.name}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        form.write(rows, tmp, writer)
        _publish(tmp, out, fmt, force)
    finally:
        _remove(tmp)
    return out


def _import_pyarrow() -> Any:
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError:
        raise ValueError("parquet export needs pyarrow: pip install pyarrow") from None
    return (pa, pq)


def _import_datasets() -> Any:
    try:
        import datasets
    except ImportError:
        raise ValueError("Hugging Face export needs datasets: pip install datasets") from None
    return datasets


def _write_jsonl(rows: list[dict[str, Any]], tmp: Path, _: Any) -> None:
    with tmp.open("x") as f:
        for row in rows:
            f.write(json.dumps(row, sort_keys=True) + "\n")


def _write_csv(rows: list[dict[str, Any]], tmp: Path, _: Any) -> None:
    flat = _flat(rows, text=True)
    with tmp.open("x", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=list(flat[0]) if flat else [])
        writer.writeheader()
        writer.writerows(flat)


def _write_parquet(rows: list[dict[str, Any]], tmp: Path, writer: Any) -> None:
    pa, pq = writer
    pq.write_table(pa.Table.from_pylist(_flat(rows)), str(tmp))


def _write_hf(rows: list[dict[str, Any]], tmp: Path, datasets: Any) -> None:
    datasets.Dataset.from_list(_flat(rows)).save_to_disk(str(tmp))


def _publish(tmp: Path, out: Path, fmt: str, force: bool) -> None:
    """Move the finished export from `tmp` to `out` without clobbering what `force` does not allow."""
    if not FORMATS[fmt].folder:
        if not force:
            # A hard link fails if `out` appeared since the check: never clobber without --force.
            try:
                os.link(tmp, out)
                return
            except FileExistsError:
                raise ExportError(f"{out} exists; pass --force to replace it") from None
            except OSError:
                check_target(out, fmt, force=False)  # no hard links here: check once more, then rename
        os.replace(tmp, out)  # atomic: readers see the old file or the new one
        return
    if not out.exists():
        try:
            os.rename(tmp, out)
            return
        except OSError:
            # Something appeared under that name meanwhile (a rename only lands on an empty folder).
            check_target(out, fmt, force=force)
    # A folder cannot be renamed over a non-empty folder: move the old one aside (a hidden name
    # beside it), move the new one in, then delete the old one; put it back if the swap fails.
    old = out.with_name(f".{out.name}.{uuid.uuid4().hex[:8]}.old")
    os.rename(out, old)
    try:
        os.rename(tmp, out)
    except BaseException:
        os.rename(old, out)
        raise
    _remove(old)


class Format(NamedTuple):
    """How one `--format` is written: `write(rows, tmp, load())`, into a file or a new folder."""

    write: Callable[[list[dict[str, Any]], Path, Any], None]
    folder: bool = False
    load: Callable[[], Any] | None = None  # the optional package it needs, imported lazily


FORMATS: dict[str, Format] = {
    "jsonl": Format(_write_jsonl),
    "csv": Format(_write_csv),
    "parquet": Format(_write_parquet, load=_import_pyarrow),
    "hf": Format(_write_hf, folder=True, load=_import_datasets),
    "inspect": Format(export_inspect.write_inspect, folder=True, load=export_inspect.import_inspect),
}


def _remove(tmp: Path) -> None:
    if tmp.is_dir() and not tmp.is_symlink():
        shutil.rmtree(tmp, ignore_errors=True)
    else:
        tmp.unlink(missing_ok=True)


def _flat(rows: list[dict[str, Any]], *, text: bool = False) -> list[dict[str, Any]]:
    """Columnar formats want one value per cell: nested transcript and verdict become JSON, and
    so does a source column's nested value; the source's columns become `source.<column>`. Every
    row gets every column (None where it has none), and a column whose values differ in kind
    across rows (one file's string ids, another's row numbers) holds their text. `text` (CSV):
    every nested value is JSON."""
    flat = []
    for r in rows:
        row = {k: v for k, v in r.items() if k != "source"}
        row["transcript"], row["verdict"] = json.dumps(r.get("transcript")), json.dumps(r.get("verdict"))
        row |= {
            f"source.{k}": v if _kind(v) != "nested" else json.dumps(v)
            for k, v in (r.get("source") or {}).items()
        }
        flat.append(row)
    names = list(dict.fromkeys(k for row in flat for k in row))
    as_text = {k for k in names if len({_kind(row.get(k)) for row in flat} - {None}) > 1}
    if text:
        as_text |= {k for k in names if any(_kind(row.get(k)) == "nested" for row in flat)}
    return [{k: _text(row.get(k)) if k in as_text else row.get(k) for k in names} for row in flat]


def _kind(value: Any) -> str | None:
    """What a columnar format stores a value as (None: a missing value fits any column)."""
    if value is None:
        return None
    if isinstance(value, bool | str):
        return type(value).__name__
    return "number" if isinstance(value, int | float) else "nested"


def _text(value: Any) -> str | None:
    return value if value is None or isinstance(value, str) else json.dumps(value)
