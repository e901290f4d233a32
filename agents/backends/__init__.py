"""Backends translate the model protocol to one engine each. Import lazily: `hf` pulls in torch."""
