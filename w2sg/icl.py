"""In-context-learning W2SG (Sang et al. 2024, §3.3): a strong LLM labels each test row from k
demos drawn from the strong split, whose labels come from a chosen supervisor (weak teacher,
ensemble, recorded or oversight labels; gold demos give the ICL ceiling).

The prediction is p("1") from the model's `choice_probs` over "1"/"0", so any backend works
(local HF, OpenAI-compatible, scripted). The model is passed in, duck-typed: this package does
not import `agents`. Demo selectors: random, class-balanced, BM25 (bm25s), TopK by embedding
similarity (MiniLM mean-pooled), and VoteK (Su et al. 2022: a diverse, representative subset
chosen on a kNN graph of the pool, then each query's nearest members of that subset).
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Sequence
from typing import Any, Literal, Protocol

import numpy as np
from pydantic import Field

from w2sg.config import Config
from w2sg.data import Example

Selector = Literal["random", "balanced", "bm25", "topk", "votek"]
SELECTORS: tuple[Selector, ...] = ("random", "balanced", "bm25", "topk", "votek")
INSTRUCTION = (
    "Each example is a science question with a candidate answer. "
    "Label 1 if the answer is correct and 0 if it is not."
)


class ICLConfig(Config):
    model: str | dict[str, Any] = Field(
        "embedded/smollm2",
        description="any model string of the model layer, or a model spec mapping ({name, openai: "
        "{model, base_urls, timeout_s}, retry: ..., max_concurrency}), validated when a command loads it",
    )
    k: int = Field(4, ge=1, description="demos per prompt")
    selectors: list[Selector] = Field(default_factory=lambda: list(SELECTORS))
    label_sources: list[str] = Field(
        default_factory=lambda: ["gold", "weak"],
        description="demo labels: gold (the ICL ceiling), weak, an ensemble, or a p(true) column",
    )
    confidence: list[bool] = Field(
        default_factory=lambda: [False], description="run without and/or with '(Confidence: p)' per demo"
    )
    zero_shot: bool = Field(True, description="also score the model with no demos")
    test_questions: int | None = Field(
        100, ge=1, description="test questions scored (2 rows each); None = all"
    )
    pool_questions: int | None = Field(None, ge=1, description="demo pool (strong split); None: all")
    embedder: str = Field("embedded/minilm", description="encoder for topk / votek similarity")
    votek_size: int = Field(32, ge=1, description="votek: pool members selected before per-query retrieval")
    votek_neighbors: int = Field(10, ge=1, description="votek: out-degree of the kNN graph")
    instruction: str = INSTRUCTION

    def model_refs(self) -> dict[str, tuple[str, str]]:
        """field → (name, kind): what `agents.names.check_config_models` resolves."""
        model = {"model": (self.model, "name")} if isinstance(self.model, str) else {}
        return {**model, "embedder": (self.embedder, "path")}


class ChoiceModel(Protocol):
    async def choice_probs(self, messages: Sequence[dict[str, str]], choices: Sequence[str]) -> Any: ...


def format_confidence(p: float) -> str:
    """The supervisor's confidence in the label it gives: max(p, 1 - p), two decimals."""
    return f"(Confidence: {max(p, 1 - p):.2f})"


def example_text(e: Example) -> str:
    return f"Question: {e.question}\nAnswer: {e.answer}\nLabel:"


def demo_text(e: Example, p: float, confidence: bool) -> str:
    label = f" {int(p > 0.5)}"
    return example_text(e) + label + (f" {format_confidence(p)}" if confidence else "")


def build_messages(
    demos: Sequence[tuple[Example, float]],
    query: Example,
    *,
    confidence: bool,
    instruction: str = INSTRUCTION,
) -> list[dict[str, str]]:
    parts = [instruction, *(demo_text(e, p, confidence) for e, p in demos), example_text(query)]
    return [{"role": "user", "content": "\n\n".join(parts)}]


def _query_rng(seed: int, e: Example) -> np.random.Generator:
    """Per-query randomness that does not depend on query order."""
    return np.random.default_rng([seed, int(hashlib.sha256(e.id.encode()).hexdigest()[:12], 16)])


def select_random(n_pool: int, k: int, rng: np.random.Generator) -> list[int]:
    return rng.choice(n_pool, min(k, n_pool), replace=False).tolist()


def select_balanced(labels: np.ndarray, k: int, rng: np.random.Generator) -> list[int]:
    """k // 2 demos labelled 1 and k // 2 labelled 0 (by the source's hardened labels); an odd k
    takes its last demo from a class picked at random. Shuffled, so the order carries no label."""
    by_class = [np.flatnonzero(labels <= 0.5), np.flatnonzero(labels > 0.5)]
    want = [k // 2, k // 2]
    if k % 2:
        want[int(rng.integers(2))] += 1
    picked = [
        i for c in (0, 1) for i in rng.choice(by_class[c], min(want[c], len(by_class[c])), replace=False)
    ]
    rng.shuffle(picked)
    return [int(i) for i in picked]


def topk_by_similarity(pool_emb: np.ndarray, query_emb: np.ndarray, k: int) -> list[list[int]]:
    """Per query, the k pool rows of highest cosine similarity, least similar first (the nearest
    demo sits next to the query)."""
    sims = _normalise(query_emb) @ _normalise(pool_emb).T
    top = np.argsort(-sims, axis=1, kind="stable")[:, :k]
    return [row[::-1].tolist() for row in top]


def bm25_topk(pool_texts: Sequence[str], query_texts: Sequence[str], k: int) -> list[list[int]]:
    """Per query, the k pool rows of highest BM25 score (bm25s, English stop words removed),
    least relevant first."""
    import bm25s

    retriever = bm25s.BM25()
    retriever.index(
        bm25s.tokenize(list(pool_texts), stopwords="en", show_progress=False), show_progress=False
    )
    docs, _ = retriever.retrieve(
        bm25s.tokenize(list(query_texts), stopwords="en", show_progress=False),
        k=min(k, len(pool_texts)),
        show_progress=False,
    )
    return [row[::-1].tolist() for row in np.asarray(docs)]


def votek(emb: np.ndarray, m: int, neighbors: int = 10, rho: float = 10.0) -> list[int]:
    """Vote-k selective annotation (Su et al. 2022). Each row v votes for its `neighbors` nearest
    rows N(v); a vote counts rho^-|N(v) ∩ selected|, so regions already covered count less. The
    row with the most votes is selected, m times. Deterministic (ties: lowest index)."""
    n = len(emb)
    sims = _normalise(emb) @ _normalise(emb).T
    np.fill_diagonal(sims, -np.inf)
    knn = np.argsort(-sims, axis=1, kind="stable")[:, : min(neighbors, n - 1)]
    adj = np.zeros((n, n))
    adj[np.repeat(np.arange(n), knn.shape[1]), knn.ravel()] = 1.0  # adj[v, u] = 1: v votes for u
    chosen: list[int] = []
    mask = np.zeros(n, dtype=bool)
    for _ in range(min(m, n)):
        covered = adj[:, mask].sum(1)
        weight = np.where(mask, 0.0, rho**-covered)
        score = weight @ adj
        score[mask] = -np.inf
        u = int(np.argmax(score))
        chosen.append(u)
        mask[u] = True
    return chosen


def _normalise(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


def select_demos(
    selector: Selector,
    pool: Sequence[Example],
    pool_labels: np.ndarray,
    queries: Sequence[Example],
    k: int,
    *,
    seed: int = 0,
    pool_emb: np.ndarray | None = None,
    query_emb: np.ndarray | None = None,
    votek_size: int = 32,
    votek_neighbors: int = 10,
) -> list[list[int]]:
    """Pool indices of the demos for each query, in prompt order."""
    if selector == "random":
        return [select_random(len(pool), k, _query_rng(seed, q)) for q in queries]
    if selector == "balanced":
        return [select_balanced(pool_labels, k, _query_rng(seed, q)) for q in queries]
    if selector == "bm25":
        return bm25_topk([example_text(e) for e in pool], [example_text(q) for q in queries], k)
    if pool_emb is None or query_emb is None:
        raise ValueError(f"the {selector} selector needs pool and query embeddings")
    if selector == "topk":
        return topk_by_similarity(pool_emb, query_emb, k)
    if selector == "votek":
        subset = votek(pool_emb, votek_size, votek_neighbors)
        local = topk_by_similarity(pool_emb[subset], query_emb, k)
        return [[subset[i] for i in row] for row in local]
    raise ValueError(f"selector must be one of {SELECTORS}, got {selector!r}")


async def score_prompts(
    model: ChoiceModel, prompts: Sequence[list[dict[str, str]]]
) -> tuple[np.ndarray, int]:
    """p("1") for each prompt, all in flight at once (the model's own limits bound concurrency;
    a local HF model batches them). Returns the probabilities and the prompt tokens used."""
    results = await asyncio.gather(*(model.choice_probs(p, ["1", "0"]) for p in prompts))
    tokens = sum(int(getattr(getattr(r, "usage", None), "input_tokens", 0)) for r in results)
    return np.array([float(r.probs["1"]) for r in results]), tokens
