"""The openai backend against a real local HTTP server with injected faults."""

from __future__ import annotations

import asyncio
import logging
import math
import time

import pytest

from agents import FatalModelError, Model, NoChoiceProbsError, RetriesExhaustedError, get_model
from agents.testing import FakeServer, p_yes

FAST_RETRY = {"initial_s": 0.01, "max_wait_s": 2.0, "max_attempts": 6}


def make(server: FakeServer, **fields: object) -> Model:
    fields.setdefault("retry", FAST_RETRY)
    return get_model(f"openai/fake@{server.url}", **fields)


@pytest.mark.parametrize("fault", ["429", "500", "503", "malformed", "empty", "timeout"])
async def test_transient_faults_are_retried(server: FakeServer, fault: str) -> None:
    server.control(faults=[fault, fault], timeout_sleep_s=5)
    model = make(server, openai={"timeout_s": 0.5})
    c = await model.generate("Is ice cold?", max_tokens=4)
    assert c.text.startswith(("Yes", "No"))
    assert server.stats()["requests"] == 3
    assert model.usage.retries == 2
    assert model.usage.calls == 1


async def test_retry_after_is_honoured(server: FakeServer) -> None:
    server.control(faults=["429"], retry_after="0.6")
    model = make(server)
    t0 = time.perf_counter()
    await model.generate("hello", max_tokens=2)
    assert time.perf_counter() - t0 >= 0.6
    arrivals = server.stats()["arrivals"]
    assert arrivals[1] - arrivals[0] >= 0.6


@pytest.mark.parametrize("status", ["400", "401"])
async def test_client_errors_are_not_retried(server: FakeServer, status: str) -> None:
    server.control(faults=[status])
    model = make(server)
    with pytest.raises(FatalModelError, match=f"HTTP {status}") as err:
        await model.generate("hello")
    assert server.stats()["requests"] == 1
    if status == "401":
        assert "OPENAI_API_KEY" in str(err.value)


async def test_gives_up_after_max_attempts(server: FakeServer) -> None:
    server.control(faults=["500"] * 10)
    model = make(server, retry={**FAST_RETRY, "max_attempts": 3})
    with pytest.raises(RetriesExhaustedError, match=r"gave up after 3 attempts.*HTTP 500"):
        await model.generate("hello")
    assert server.stats()["requests"] == 3
    assert model.usage.failures == 1


async def test_concurrency_cap_holds(server: FakeServer) -> None:
    server.control(latency_s=0.1)
    model = make(server, max_concurrency=4)
    await asyncio.gather(*[model.generate(f"q{i}", max_tokens=2) for i in range(20)])
    assert server.stats()["max_in_flight"] == 4


async def test_requests_per_minute_limit_holds(server: FakeServer) -> None:
    model = make(server, rpm=600)  # 10/s with a one-second burst of 10
    t0 = time.perf_counter()
    await asyncio.gather(*[model.generate(f"q{i}", max_tokens=2) for i in range(25)])
    elapsed = time.perf_counter() - t0
    assert elapsed >= 1.4  # 10 at once, then 15 more at 10/s
    arrivals = sorted(server.stats()["arrivals"])
    # after the burst, no one-second window holds more than the burst plus that second's refill
    assert max(sum(1 for b in arrivals if a <= b < a + 1.0) for a in arrivals) <= 21


async def test_tokens_per_minute_limit_holds(server: FakeServer) -> None:
    model = make(server, tpm=6000)  # 100 tokens/s
    t0 = time.perf_counter()
    # each call is estimated at ~ (4 + 4 prompt) + 40 max_tokens = 48 tokens
    await asyncio.gather(*[model.generate("word " * 16, max_tokens=40) for _ in range(6)])
    assert time.perf_counter() - t0 >= 1.0


async def test_choice_probs_from_logprobs(server: FakeServer) -> None:
    model = make(server)
    prompt = "Is copper a metal?"
    cp = await model.choice_probs(prompt, ["Yes", "No"])
    assert cp.method == "logprobs"
    assert cp["Yes"] == pytest.approx(p_yes(prompt), abs=1e-9)
    assert cp.mass == pytest.approx(0.9, abs=1e-9)


async def test_missing_logprobs_fall_back_to_sampling_and_say_so(
    server: FakeServer, caplog: pytest.LogCaptureFixture
) -> None:
    server.control(logprobs=False)
    n = 200
    model = make(server, openai={"fallback_samples": n})
    prompt = "Is copper a metal?"
    with caplog.at_level(logging.WARNING):
        cp = await model.choice_probs(prompt, ["Yes", "No"])
        await model.choice_probs("another prompt", ["Yes", "No"])
    assert cp.method == "sampled" and cp.samples == n
    p = p_yes(prompt)
    assert abs(cp["Yes"] - p) < 4 * math.sqrt(p * (1 - p) / n)
    warnings = [r for r in caplog.records if "no logprobs" in r.getMessage()]
    assert len(warnings) == 1, "warn once per model, not per call"


async def test_sampled_fallback_reads_the_verdict_anywhere_in_the_reply(server: FakeServer) -> None:
    # Chat models seldom begin with the word: "Well, I would say yes, ..." still counts.
    server.control(logprobs=False, reply_prefix="Well, I would say ")
    n = 200
    model = make(server, openai={"fallback_samples": n})
    prompt = "Is copper a metal?"
    cp = await model.choice_probs(prompt, ["Yes", "No"])
    p = p_yes(prompt)
    assert cp.method == "sampled" and cp.mass == 1.0
    assert abs(cp["Yes"] - p) < 4 * math.sqrt(p * (1 - p) / n)


def test_first_choice_is_a_whole_word_in_any_case_longest_first() -> None:
    from agents.backends.openai_choices import first_choice

    assert first_choice("Hmm. NO, not at all", ["Yes", "No"]) == "No"
    assert first_choice("Nothing to add; yes.", ["Yes", "No"]) == "Yes"  # "Nothing" is not "No"
    assert first_choice("not sure, no", ["No", "Not sure"]) == "Not sure"
    assert first_choice("Yesterday, maybe", ["Yes", "No"]) is None


async def test_a_server_that_ignores_temperature_is_named(
    server: FakeServer, caplog: pytest.LogCaptureFixture
) -> None:
    server.control(logprobs=False, ignore_sampling=True)
    model = make(server, openai={"fallback_samples": 6})
    with caplog.at_level(logging.WARNING):
        cp = await model.choice_probs("Is copper a metal?", ["Yes", "No"])
        await model.choice_probs("another prompt", ["Yes", "No"])
    assert cp.method == "sampled" and cp["Yes"] in (0.0, 1.0)
    same = [r for r in caplog.records if "ignore temperature and seed" in r.getMessage()]
    assert len(same) == 1, "warn once per model"


async def test_missing_logprobs_can_be_an_error(server: FakeServer) -> None:
    server.control(logprobs=False)
    model = make(server, openai={"choice_probs_fallback": "error"})
    with pytest.raises(FatalModelError, match="no logprobs"):
        await model.choice_probs("x", ["Yes", "No"])


async def test_choices_absent_from_top_logprobs_is_an_error(server: FakeServer) -> None:
    model = make(server)
    with pytest.raises(NoChoiceProbsError, match="none of"):
        await model.choice_probs("x", ["A", "B"])


async def test_api_key_never_appears_in_logs_or_errors(
    server: FakeServer, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    secret = "sk-test-5ecret-d0-not-leak-0123456789"
    monkeypatch.setenv("MY_KEY", secret)
    server.control(require_key=secret, faults=["500", "429"])
    model = make(server, openai={"api_key_env": "MY_KEY"})
    with caplog.at_level(logging.DEBUG):
        ok = await model.generate("hello", max_tokens=2)
        monkeypatch.setenv("MY_KEY", "sk-wrong-key-abcdef")
        bad = make(server, openai={"api_key_env": "MY_KEY"})
        with pytest.raises(FatalModelError) as err:
            await bad.generate("hello")
    assert ok.text
    assert "HTTP 401" in str(err.value) and "MY_KEY" in str(err.value)
    assert secret not in caplog.text
    assert "sk-wrong-key-abcdef" not in caplog.text + str(err.value)
    assert secret not in repr(model.spec) + model.spec.model_dump_json()


def test_non_local_base_url_is_refused_in_tests() -> None:
    with pytest.raises(FatalModelError, match="refuses non-local base_url"):
        get_model("openai/gpt-4o-mini@https://api.openai.com/v1")


def test_missing_key_for_openai_names_the_env_var(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("W2SG_LOCAL_ONLY")  # constructing a client sends nothing
    with pytest.raises(FatalModelError, match="set the OPENAI_API_KEY environment variable"):
        get_model("openai/gpt-4o-mini")


def test_socket_guard_blocks_remote_hosts() -> None:
    import socket

    with socket.socket() as s, pytest.raises(ConnectionRefusedError, match="only reach"):
        s.connect(("203.0.113.1", 443))


async def test_several_base_urls_share_the_load(server: FakeServer) -> None:
    server.control(latency_s=0.05)
    with FakeServer(latency_s=0.05) as other:
        model = make(server, openai={"base_urls": [other.url]}, max_concurrency=8)
        await asyncio.gather(*[model.generate(f"q{i}", max_tokens=2) for i in range(40)])
        a, b = server.stats()["requests"], other.stats()["requests"]
    assert a + b == 40
    assert min(a, b) >= 15


async def test_a_dead_endpoint_fails_over(server: FakeServer) -> None:
    import socket

    with socket.socket() as s:  # a port with nothing listening
        s.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{s.getsockname()[1]}/v1"
    model = make(server, openai={"base_urls": [dead]})
    results = await asyncio.gather(*[model.generate(f"q{i}", max_tokens=2) for i in range(6)])
    assert all(r.text for r in results)
    assert model.usage.retries >= 1


async def test_cost_from_price_table(server: FakeServer) -> None:
    model = make(server, price={"input_per_mtok": 2.0, "output_per_mtok": 10.0})
    c = await model.generate("one two three", max_tokens=3)
    expected = (c.usage.input_tokens * 2.0 + c.usage.output_tokens * 10.0) / 1e6
    assert c.cost_usd == pytest.approx(expected)
    assert model.usage.cost_usd == pytest.approx(expected)
