"""How models talk: LangGraph state machines (debate, consultancy, interaction) ending in a verdict.

Built on `agents` only; the graphs themselves arrive with the debate and interaction stages.
"""

__all__: list[str] = []
