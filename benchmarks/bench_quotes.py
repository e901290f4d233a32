"""Quote verification over a long passage: `check_quotes` vs a plain substring search, same run.

A QuALITY-sized passage (about 6,000 words of generated prose, sentences of 6 to 24 words, a few
abbreviations and decimals) and one speaker turn with 10 quotes: 6 verbatim (near the start,
middle and end, one with its case and punctuation changed, one running across a sentence end as
the passage does) and 4 not (words shuffled, spliced across a sentence end, absent words, a quote
of words from two places). The baseline is what a bare verifier would do for the same turn: the
passage normalised (lower case, punctuation to spaces, split into words) and each quote searched
as `" ".join(quote_words) in " ".join(passage_words)` — no sentence-boundary rule, no tag
stripping, no Unicode folding. Printed: ms per turn both ways and the ratio ours/baseline, for a
passage seen for the first time (cold: nothing cached) and for one already checked (warm: a
debate checks every turn against the same passage). Goal: within a small factor (≤ 3×) cold.

    python benchmarks/bench_quotes.py            # 6,000 words, 10 quotes, 200 rounds
    python benchmarks/bench_quotes.py --quick    # 2,000 words, 30 rounds (seconds)
"""

from __future__ import annotations

import argparse
import random
import re
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from _timing import interleaved_medians

from graphs import quotes
from graphs.quotes import check_quotes

VOCAB = (
    "the river carried cold water past the old mill while villagers argued about the harvest captain "
    "morrow said his ship would leave at dawn with three crates of copper wire and a letter for the "
    "governor nobody trusted the new engineer because she measured everything twice"
)
EXTRA = ["Dr. Hale", "e.g. the", "3.5 kg", "Mr. Pike", "approx. 40"]


def passage(n_words: int, seed: int = 0) -> str:
    rng = random.Random(seed)
    vocab = VOCAB.split(" ")
    sents, total = [], 0
    while total < n_words:
        k = rng.randint(6, 24)
        ws = [rng.choice(vocab) for _ in range(k)]
        if rng.random() < 0.2:
            ws.insert(rng.randrange(1, k), rng.choice(EXTRA))
        sents.append(" ".join(ws).capitalize() + rng.choice([".", ".", ".", "!", "?"]))
        total += k
    # Paragraphs: a line break every 8 sentences.
    return "\n".join(" ".join(sents[i : i + 8]) for i in range(0, len(sents), 8))


def turn(text: str, seed: int = 1) -> str:
    rng = random.Random(seed)
    sents = re.split(r"(?<=[.!?])\s+", text)
    n = len(sents)

    def part(i: int, k: int = 8) -> str:
        return " ".join(sents[i].split()[:k])

    ok = [
        part(1),
        part(n // 3),
        part(n // 2, 12),
        part(n - 2).upper().replace(" ", ",  "),  # case and punctuation differ: still verbatim
        f"{sents[n // 4]} {' '.join(sents[n // 4 + 1].split()[:3])}",  # across a sentence end, as written
        part(n - 1),
    ]
    tail = " ".join(sents[n // 5].split()[-3:]).rstrip(".!?")
    spliced = f"{tail} {part(n // 5 + 1, 3)}"
    shuffled = part(n // 6).split()
    rng.shuffle(shuffled)
    bad = [
        " ".join(shuffled),
        spliced,  # drops the passage's sentence end
        "the zeppelin hovered over quiet marshes",  # words not in the passage
        f"{part(7, 4)} {part(n - 3, 4)}",  # two places stitched together
    ]
    return " ".join(f"Look: <quote>{q}</quote>." for q in ok + bad)


def baseline(text: str, context: str) -> list[bool]:
    words = re.sub(r"[^\w\s]", " ", context.lower()).split()
    hay = " ".join(words)
    qs = re.findall(r"<quote>(.*?)</quote>", text, re.S | re.I)
    return [" ".join(re.sub(r"[^\w\s]", " ", q.lower()).split()) in hay for q in qs]


def clear_cache() -> None:
    cached = getattr(quotes, "_passage_index", None)
    if cached is not None and hasattr(cached, "cache_clear"):
        cached.cache_clear()


def run(n_words: int, rounds: int) -> None:
    ctx = passage(n_words)
    text = turn(ctx)
    got = [q.verified for q in check_quotes(text, ctx)]
    assert got == [True] * 6 + [False] * 4, got  # the turn is what it says it is
    n_quotes = len(got)

    def timed(fn) -> float:  # type: ignore[no-untyped-def]
        t0 = time.perf_counter()
        fn()
        return (time.perf_counter() - t0) * 1000

    def cold() -> float:
        clear_cache()
        return timed(lambda: check_quotes(text, ctx))

    def warm() -> float:
        return timed(lambda: check_quotes(text, ctx))

    def base() -> float:
        return timed(lambda: baseline(text, ctx))

    t_base, t_cold, t_warm = interleaved_medians(rounds, base, cold, warm)
    print(f"passage: {len(ctx.split()):,} words, {len(ctx):,} characters; {n_quotes} quotes in one turn")
    print(f"baseline (normalised substring search): {t_base:.3f} ms/turn")
    print(f"check_quotes, passage not seen before:  {t_cold:.3f} ms/turn")
    print(f"check_quotes, passage already checked:  {t_warm:.3f} ms/turn")
    print(f"ratio ours/baseline (cold) = {t_cold / t_base:.2f}x (goal <= 3x)")
    print(f"ratio ours/baseline (warm) = {t_warm / t_base:.2f}x")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="small sizes, for the test suite")
    args = ap.parse_args()
    if args.quick:
        run(2000, 30)
    else:
        run(6000, 200)


if __name__ == "__main__":
    main()
