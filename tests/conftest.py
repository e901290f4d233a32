"""Test setup: offline, local-only, and a real OpenAI-compatible server on 127.0.0.1."""

from __future__ import annotations

import ipaddress
import os
import socket
from collections.abc import Iterator

import pytest

# Before anything imports transformers or openai.
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["W2SG_LOCAL_ONLY"] = "1"  # the openai backend refuses non-loopback base_urls
os.environ["TOKENIZERS_PARALLELISM"] = "false"
for var in ("OPENAI_API_KEY", "OPENAI_BASE_URL", "OPENAI_ORG_ID"):
    os.environ.pop(var, None)

_connect = socket.socket.connect
_connect_ex = socket.socket.connect_ex


def _refuse_remote(sock: socket.socket, address: object) -> None:
    if sock.family in (socket.AF_INET, socket.AF_INET6) and isinstance(address, tuple):
        host = str(address[0])
        try:
            local = host == "localhost" or ipaddress.ip_address(host.split("%")[0]).is_loopback
        except ValueError:
            local = False
        if not local:
            raise ConnectionRefusedError(f"tests may only reach 127.0.0.1/::1, not {host}")


def _guarded_connect(self: socket.socket, address: object) -> None:
    _refuse_remote(self, address)
    return _connect(self, address)


def _guarded_connect_ex(self: socket.socket, address: object) -> int:
    _refuse_remote(self, address)
    return _connect_ex(self, address)


socket.socket.connect = _guarded_connect  # type: ignore[method-assign]
socket.socket.connect_ex = _guarded_connect_ex  # type: ignore[method-assign]


@pytest.fixture(scope="session")
def fake_server_session() -> Iterator[object]:
    from agents.testing import FakeServer

    with FakeServer() as server:
        yield server


@pytest.fixture
def server(fake_server_session):  # type: ignore[no-untyped-def]
    """The shared fake server, reset to defaults (no latency, no faults) for each test."""
    fake_server_session.reset()
    return fake_server_session


@pytest.fixture(scope="session")
def tiny_hf():  # type: ignore[no-untyped-def]
    from agents.backends.hf import load_hf
    from agents.config import HFOptions

    return load_hf("embedded/tiny-gpt2", HFOptions(device="cpu", max_batch_size=8, batch_wait_ms=20))


@pytest.fixture(scope="session")
def smollm2():  # type: ignore[no-untyped-def]
    from agents.backends.hf import load_hf
    from agents.config import HFOptions

    return load_hf("embedded/smollm2", HFOptions(device="cpu", max_batch_size=8, batch_wait_ms=20))
