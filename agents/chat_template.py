"""A model's chat template, rendered on the client: the text a chat endpoint would feed the model.

`/v1/completions` takes raw text, so scoring choices through it (`echo`, `completion_logprobs`)
needs the prompt exactly as the server's chat endpoint would build it. This renders the
Hugging Face chat template the way transformers does (a sandboxed Jinja environment with
`trim_blocks`, `lstrip_blocks`, loop controls, `raise_exception`, `strftime_now` and a `tojson`
that does not escape HTML), from the files a model folder already has. No torch, no tokenizer.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from agents.errors import FatalModelError
from agents.types import Message


class ChatTemplate:
    def __init__(self, source: str, *, bos_token: str = "", eos_token: str = "", where: str = "template"):
        import jinja2
        import jinja2.ext
        from jinja2.sandbox import ImmutableSandboxedEnvironment

        def raise_exception(message: str) -> None:
            raise jinja2.exceptions.TemplateError(message)

        def tojson(x: Any, ensure_ascii: bool = False, indent: int | None = None, **kw: Any) -> str:
            return json.dumps(x, ensure_ascii=ensure_ascii, indent=indent, **kw)

        env = ImmutableSandboxedEnvironment(
            trim_blocks=True, lstrip_blocks=True, extensions=[jinja2.ext.loopcontrols]
        )
        env.filters["tojson"] = tojson
        env.globals["raise_exception"] = raise_exception
        env.globals["strftime_now"] = lambda fmt: datetime.now().strftime(fmt)
        try:
            self.template = env.from_string(source)
        except jinja2.TemplateError as e:
            raise FatalModelError(f"{where}: not a valid Jinja chat template ({e})") from None
        self.special = {"bos_token": bos_token, "eos_token": eos_token}
        self.where = where

    def render(self, messages: Sequence[Message]) -> str:
        """The prompt text for `messages`, ending where the assistant's reply begins."""
        import jinja2

        try:
            return self.template.render(
                messages=[m.model_dump() for m in messages], add_generation_prompt=True, **self.special
            )
        except jinja2.TemplateError as e:
            raise FatalModelError(f"{self.where}: the chat template failed ({e})") from None

    @classmethod
    def load(cls, path: Path) -> ChatTemplate:
        """From a Jinja file, or a model folder: its `chat_template.jinja`, else the `chat_template`
        of its `tokenizer_config.json` (a string, or a list of named templates: `default`)."""
        if path.is_file():
            return cls(path.read_text(), where=str(path))
        if not path.is_dir():
            raise FatalModelError(f"chat_template: no such file or folder {str(path)!r}")
        config_file = path / "tokenizer_config.json"
        config: dict[str, Any] = json.loads(config_file.read_text()) if config_file.is_file() else {}
        special = {k: _token_text(config.get(k)) for k in ("bos_token", "eos_token")}
        if (path / "chat_template.jinja").is_file():
            return cls((path / "chat_template.jinja").read_text(), **special, where=str(path))
        source = config.get("chat_template")
        if isinstance(source, list):  # [{"name": "default", "template": ...}, ...]
            named = {t.get("name"): t.get("template") for t in source if isinstance(t, dict)}
            source = named.get("default")
        if not isinstance(source, str):
            raise FatalModelError(
                f"chat_template: {path} has no chat_template.jinja and no `chat_template` in "
                "tokenizer_config.json; give the template file itself"
            )
        return cls(source, **special, where=str(config_file))


def _token_text(token: Any) -> str:
    """A special token as tokenizer_config.json writes it: a string or {"content": ...}."""
    if isinstance(token, dict):
        return str(token.get("content", ""))
    return token if isinstance(token, str) else ""
