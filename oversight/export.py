"""Export labels with their provenance: JSONL always; parquet (pyarrow) and a Hugging Face
`datasets` folder when those packages are installed. Files are written to a temporary name and
renamed, so an interrupted export never leaves a half-written file under the final name."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

from oversight.store import LabelStore


def export_rows(
    store_path: str | Path, protocol: str | None = None, config_hash: str | None = None
) -> list[dict[str, Any]]:
    """One flat dict per label: ids, status, p_true, error, then the provenance record."""
    store = LabelStore(store_path)
    try:
        keys = store.db.execute("SELECT DISTINCT protocol, config_hash FROM labels").fetchall()
        keys = [(p, h) for p, h in keys if protocol in (None, p) and config_hash in (None, h)]
        if not keys:
            raise ValueError(f"{store_path}: no labels for protocol={protocol} config_hash={config_hash}")
        out = []
        for p, h in keys:
            for r in store.rows(p, h):
                out.append(
                    {
                        "example_id": r.example_id,
                        "protocol": r.protocol,
                        "config_hash": r.config_hash,
                        "status": r.status,
                        "p_true": r.p_true,
                        "error": r.error,
                        **r.record,
                    }
                )
        return out
    finally:
        store.close()


def write_export(rows: list[dict[str, Any]], out: str | Path, fmt: str) -> Path:
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    if fmt == "jsonl":
        with tmp.open("w") as f:
            for row in rows:
                f.write(json.dumps(row, sort_keys=True) + "\n")
    elif fmt == "parquet":
        try:
            import pyarrow as pa
            import pyarrow.parquet as pq
        except ImportError:
            raise ValueError("parquet export needs pyarrow: pip install pyarrow") from None
        pq.write_table(pa.Table.from_pylist(_flat(rows)), tmp)
    elif fmt == "hf":
        try:
            import datasets
        except ImportError:
            raise ValueError("Hugging Face export needs datasets: pip install datasets") from None
        datasets.Dataset.from_list(_flat(rows)).save_to_disk(str(tmp))
    else:
        raise ValueError(f"format must be jsonl, parquet or hf, got {fmt!r}")
    if tmp.is_dir() and out.exists():
        # A folder cannot be renamed over a folder: move the old one aside until the new one is in.
        old = out.with_name(out.name + ".old")
        shutil.rmtree(old, ignore_errors=True)
        os.replace(out, old)
        os.replace(tmp, out)
        shutil.rmtree(old)
    else:
        os.replace(tmp, out)
    return out


def _flat(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Columnar formats want scalar columns: nested transcript and verdict become JSON strings."""
    return [
        {**r, "transcript": json.dumps(r.get("transcript")), "verdict": json.dumps(r.get("verdict"))}
        for r in rows
    ]
