"""Record/replay cache: a replayed run reproduces every output without touching the backend."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from agents import CacheMissError, get_model
from agents.testing import FakeServer

PROMPTS = [f"Is statement {i} true?" for i in range(8)]


async def run_calls(model) -> list[object]:  # type: ignore[no-untyped-def]
    gens = await asyncio.gather(
        *[model.generate(p, max_tokens=5, temperature=1.0, seed=i) for i, p in enumerate(PROMPTS)]
    )
    probs = await asyncio.gather(*[model.choice_probs(p, ["Yes", "No"]) for p in PROMPTS])
    return [(g.text, g.usage) for g in gens] + [p.probs for p in probs]


async def test_record_then_replay_is_identical_and_offline(tmp_path: Path) -> None:
    db = tmp_path / "cache.sqlite"
    with FakeServer() as live:
        name = f"openai/fake@{live.url}"
        recorder = get_model(name, cache={"path": db, "mode": "record"})
        recorded = await run_calls(recorder)
        assert live.stats()["requests"] == 16
        again = await run_calls(recorder)  # hits: the server sees nothing new
        assert live.stats()["requests"] == 16
        assert again == recorded and recorder.usage.cache_hits == 16
    # The server is gone: replay must not need it.
    replayer = get_model(name, cache={"path": db, "mode": "replay"})
    assert await run_calls(replayer) == recorded
    assert replayer.usage.calls == 0 and replayer.usage.cache_hits == 16


async def test_replay_miss_fails_loudly(tmp_path: Path) -> None:
    db = tmp_path / "cache.sqlite"
    model = get_model("scripted", cache={"path": db, "mode": "record"})
    await model.generate("hello", max_tokens=4, seed=1)
    replay = get_model("scripted", cache={"path": db, "mode": "replay"})
    assert (await replay.generate("hello", max_tokens=4, seed=1)).cached
    for changed in ({"max_tokens": 5, "seed": 1}, {"max_tokens": 4, "seed": 2}):
        with pytest.raises(CacheMissError, match="no entry for generate on scripted"):
            await replay.generate("hello", **changed)


async def test_cached_hf_replay_matches(tmp_path: Path, tiny_hf) -> None:  # type: ignore[no-untyped-def]
    from agents import wrap

    db = tmp_path / "hf.sqlite"
    live = wrap(tiny_hf, cache={"path": db, "mode": "record"})
    recorded = await run_calls(live)
    assert await run_calls(wrap(tiny_hf, cache={"path": db, "mode": "replay"})) == recorded


async def test_cache_is_shared_across_processes(tmp_path: Path) -> None:
    import subprocess
    import sys

    db = tmp_path / "cache.sqlite"
    code = (
        "import asyncio; from agents import get_model;"
        f"m = get_model('scripted', cache={{'path': r'{db}', 'mode': 'record'}});"
        "print(asyncio.run(m.generate('hi', max_tokens=3)).text)"
    )
    subprocess.run([sys.executable, "-c", code], check=True, capture_output=True)
    replay = get_model("scripted", cache={"path": db, "mode": "replay"})
    assert (await replay.generate("hi", max_tokens=3)).cached
