"""How models talk: LangGraph state machines (debate, consultancy, blind judge, N-agent debate,
human-AI interaction) ending in a verdict with p(true). Built on `agents` only; models are passed
in, never global."""

from graphs.checkpoint import memory_saver, serializer, sqlite_saver
from graphs.debate import DebateConfig, Prompts, build_debate_graph, run_debate
from graphs.draw import draw_png, mermaid
from graphs.interaction import InteractionConfig, build_interaction_graph, parse_human_reply, run_interaction
from graphs.invoke import invoke_once, invoke_recorded
from graphs.overseers import SimulatedOverseer, simulate_verdict
from graphs.quotes import check_quotes, tag_quotes
from graphs.types import SIDES, GraphState, JudgeRun, Quote, Side, Turn, Verdict

__all__ = [
    "SIDES",
    "DebateConfig",
    "GraphState",
    "InteractionConfig",
    "JudgeRun",
    "Prompts",
    "Quote",
    "Side",
    "SimulatedOverseer",
    "Turn",
    "Verdict",
    "build_debate_graph",
    "build_interaction_graph",
    "check_quotes",
    "draw_png",
    "invoke_once",
    "invoke_recorded",
    "memory_saver",
    "mermaid",
    "parse_human_reply",
    "run_debate",
    "run_interaction",
    "serializer",
    "simulate_verdict",
    "sqlite_saver",
    "tag_quotes",
]
