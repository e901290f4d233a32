"""Pictures of a compiled graph: Mermaid text always; a PNG drawn offline with matplotlib (nodes
laid out by their distance from START), since LangGraph's own PNG needs a web service or graphviz."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def mermaid(graph: Any) -> str:
    return graph.get_graph().draw_mermaid()


def draw_png(graph: Any, path: str | Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    g = graph.get_graph()
    edges = [(e.source, e.target, e.conditional) for e in g.edges]
    depth = _layers(list(g.nodes), [(s, t) for s, t, _ in edges])
    layers: dict[int, list[str]] = {}
    for node in g.nodes:
        layers.setdefault(depth.get(node, max(depth.values()) + 1), []).append(node)
    pos = {n: (i - (len(ns) - 1) / 2, -d) for d, ns in layers.items() for i, n in enumerate(sorted(ns))}
    fig, ax = plt.subplots(figsize=(2.2 * max(len(ns) for ns in layers.values()) + 2, 1.2 * len(layers) + 1))
    for s, t, cond in edges:
        (x0, y0), (x1, y1) = pos[s], pos[t]
        ax.annotate(
            "",
            xy=(x1, y1),
            xytext=(x0, y0),
            arrowprops={
                "arrowstyle": "-|>",
                "ls": "--" if cond else "-",
                "connectionstyle": "arc3,rad=0.15",
                "shrinkA": 14,
                "shrinkB": 14,
            },
        )
    for n, (x, y) in pos.items():
        ax.text(
            x, y, n.strip("_"), ha="center", va="center", fontsize=8, bbox={"boxstyle": "round", "fc": "w"}
        )
    ax.set_axis_off()
    ax.set_xlim(min(x for x, _ in pos.values()) - 1, max(x for x, _ in pos.values()) + 1)
    ax.set_ylim(min(y for _, y in pos.values()) - 0.5, 0.5)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return Path(path)


def _layers(nodes: list[str], edges: list[tuple[str, str]]) -> dict[str, int]:
    """Longest-path layers after dropping the edges that close a loop (rounds), found by DFS."""
    out: dict[str, list[str]] = {n: [] for n in nodes}
    for s, t in edges:
        out[s].append(t)
    back, state = set(), dict.fromkeys(nodes, 0)  # 0 new, 1 on the stack, 2 done

    def dfs(n: str) -> None:
        state[n] = 1
        for t in out[n]:
            if state[t] == 1:
                back.add((n, t))
            elif state[t] == 0:
                dfs(t)
        state[n] = 2

    for n in nodes:
        if state[n] == 0:
            dfs(n)
    depth = dict.fromkeys(nodes, 0)
    for _ in nodes:  # relax: a DAG of n nodes settles in n passes
        for s, t in edges:
            if (s, t) not in back:
                depth[t] = max(depth[t], depth[s] + 1)
    return depth
