"""Choice probabilities from an OpenAI-compatible server by every method it may offer (issue 18):
chat top-logprobs, /v1/completions echo and top-logprobs, transformers serve's /v1/systemone, and
sampling last; `auto` finds the best one once. Against the real local test server, whose
/v1/completions reads the prompt back out of its own chat template."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest

from agents import FatalModelError, ModelSpec, NoChoiceProbsError, get_model
from agents.backends.openai_choices import Unsupported, echoed_logprob
from agents.backends.openai_compat import served_models
from agents.chat_template import ChatTemplate
from agents.testing import FakeServer, p_yes
from agents.testing.server import CHAT_TEMPLATE

PROMPT = "Question: Is ice cold?\nAnswer: yes\nIs the answer correct? Reply Yes or No."


@pytest.fixture
def template(tmp_path: Path) -> Path:
    path = tmp_path / "chat_template.jinja"
    path.write_text(CHAT_TEMPLATE)
    return path


def model(server: FakeServer, template: Path | None, method: str = "auto", **openai: object):
    options = {"base_urls": [server.url], "choice_method": method, **openai}
    if template is not None:
        options["chat_template"] = str(template)
    return get_model(ModelSpec.model_validate({"name": "openai/fake", "openai": options}))


@pytest.mark.parametrize("method", ["logprobs", "echo", "completion_logprobs"])
async def test_exact_methods_give_the_servers_probability(
    server: FakeServer, template: Path, method: str
) -> None:
    async with model(server, template, method) as m:
        p = await m.choice_probs(PROMPT, ["Yes", "No"])
    assert p.method == method
    assert p["Yes"] == pytest.approx(p_yes(PROMPT), abs=1e-9)
    assert p.mass == pytest.approx(0.9, abs=1e-9)  # 0.1 of the first token went to "Maybe"
    endpoint = "chat" if method == "logprobs" else "completions"
    assert set(server.stats()["endpoints"]) == {endpoint}


@pytest.mark.parametrize(
    ("server_lacks", "with_template", "found"),
    [
        ({}, True, "logprobs"),
        ({"logprobs": False}, True, "echo"),
        ({"logprobs": False, "echo": False}, True, "completion_logprobs"),
        ({"logprobs": False, "completions": False}, True, "sampled"),
        ({"logprobs": False, "completions": False, "systemone": True}, True, "systemone"),
        ({"logprobs": False}, False, "sampled"),  # no template: /v1/completions is never tried
    ],
)
async def test_auto_finds_the_best_method_once(
    server: FakeServer, template: Path, server_lacks: dict[str, bool], with_template: bool, found: str
) -> None:
    server.control(**server_lacks)
    async with model(server, template if with_template else None) as m:
        first = await m.choice_probs(PROMPT, ["Yes", "No"])
        before = dict(server.stats()["endpoints"])
        second = await m.choice_probs(PROMPT + " ", ["Yes", "No"])
        after = server.stats()["endpoints"]
    assert first.method == second.method == found
    if not with_template:
        assert "completions" not in after
    # The second call goes straight to the method found: no probing of the others again.
    used = {"logprobs": "chat", "sampled": "chat", "systemone": "systemone"}.get(found, "completions")
    assert {k: after[k] - before.get(k, 0) for k in after if after[k] != before.get(k, 0)}.keys() == {used}
    if found != "sampled":
        assert first["Yes"] == pytest.approx(p_yes(PROMPT), abs=1e-9)


async def test_choices_outside_the_top_logprobs_are_scored_by_echo(
    server: FakeServer, template: Path
) -> None:
    # "No" is this prompt's first token; "Nope" never is: with one top logprob the chat route sees
    # neither choice's share, so echo scores both exactly (the template renders the prompt here).
    prompt = "Is ice hot?"
    async with model(server, template, "logprobs", top_logprobs=1) as m:
        p = await m.choice_probs(prompt, ["Yes", "Nope"])
    assert p.method == "echo"
    q = 0.9 * p_yes(prompt)
    assert p["Yes"] == pytest.approx(q / (q + 0.001), abs=1e-9)  # the server's 0.001 for unknown tokens
    assert set(server.stats()["endpoints"]) == {"chat", "completions"}
    assert p.usage.input_tokens > 0


async def test_choices_outside_the_top_logprobs_without_a_template_fail_saying_so(
    server: FakeServer,
) -> None:
    spec = {"base_urls": [server.url], "choice_method": "logprobs", "top_logprobs": 1}
    m = get_model(
        ModelSpec.model_validate({"name": "openai/fake", "openai": spec, "retry": {"max_attempts": 1}})
    )
    said = r"none of \['Yes', 'Nope'\] among the top-1 first tokens \['No'\]"
    async with m:
        with pytest.raises(NoChoiceProbsError, match=said):
            await m.choice_probs("Is ice hot?", ["Yes", "Nope"])


async def test_a_forced_method_the_server_lacks_fails_naming_it(server: FakeServer, template: Path) -> None:
    server.control(completions=False)
    async with model(server, template, "echo") as m:
        with pytest.raises(FatalModelError, match=r"choice_method echo: .*HTTP 404"):
            await m.choice_probs(PROMPT, ["Yes", "No"])
    server.control(completions=True, echo=False)
    async with model(server, template, "echo") as m:
        with pytest.raises(FatalModelError, match=r"choice_method echo: .*does not echo"):
            await m.choice_probs(PROMPT, ["Yes", "No"])
    async with model(server, None, "completion_logprobs") as m:
        with pytest.raises(FatalModelError, match=r"set openai\.chat_template"):
            await m.choice_probs(PROMPT, ["Yes", "No"])


async def test_no_method_and_no_sampling_is_an_error_that_says_what_was_tried(server: FakeServer) -> None:
    server.control(logprobs=False)
    async with model(server, None, choice_probs_fallback="error") as m:
        with pytest.raises(
            FatalModelError, match=r"logprobs: chat completions carry no logprobs.*systemone: HTTP 404"
        ):
            await m.choice_probs(PROMPT, ["Yes", "No"])


def test_echoed_logprob_reads_the_choice_back_from_the_end() -> None:
    # A choice of two tokens, then the one generated token; the offsets are deliberately wrong
    # (llama.cpp counts special tokens as empty text), so they must not be used.
    lp = SimpleNamespace(
        tokens=["<s>", "Is it?", "\n", "Not", " sure", "."],
        token_logprobs=[None, -1.0, -0.5, -0.25, -0.125, -3.0],
        text_offset=[0, 0, 0, 0, 0, 0],
    )
    assert echoed_logprob(lp, "Not sure", generated=1) == pytest.approx(-0.375)
    assert echoed_logprob(lp, " sure", generated=1) == pytest.approx(-0.125)
    with pytest.raises(Unsupported, match="does not echo"):
        echoed_logprob(SimpleNamespace(tokens=["Yes"], token_logprobs=[-0.1]), "Yes", generated=1)
    with pytest.raises(Unsupported, match="no prompt logprobs"):
        echoed_logprob(SimpleNamespace(tokens=None, token_logprobs=None), "Yes", generated=1)


def test_chat_template_renders_like_transformers(tmp_path: Path, tiny_hf) -> None:  # type: ignore[no-untyped-def]
    """The client-side rendering equals the tokenizer's own apply_chat_template, from the folder."""
    folder = Path(tiny_hf.tokenizer.name_or_path)
    messages = [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Is ice <b>cold</b>?"},
    ]
    want = tiny_hf.tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    from agents.types import as_messages

    assert ChatTemplate.load(folder).render(as_messages(messages)) == want
    broken = tmp_path / "t.jinja"
    broken.write_text("{% for m in messages %}")
    with pytest.raises(FatalModelError, match="not a valid Jinja chat template"):
        ChatTemplate.load(broken)
    with pytest.raises(FatalModelError, match=r"no chat_template\.jinja"):
        (tmp_path / "empty").mkdir()
        ChatTemplate.load(tmp_path / "empty")


async def test_model_id_is_read_plainly_and_listed(server: FakeServer) -> None:
    served = "/abs/path/smollm2@v1/with slashes"
    spec = {"name": "openai/smol", "openai": {"model": served, "base_urls": [server.url]}}
    async with get_model(ModelSpec.model_validate(spec)) as m:
        await m.generate("hi", max_tokens=2)
    assert server.stats()["models"] == {served: 1}
    # openai/<label>@<url> still reads the URL; the id comes from `openai.model`
    spec = {"name": f"openai/smol@{server.url}", "openai": {"model": served}}
    async with get_model(ModelSpec.model_validate(spec)) as m:
        await m.generate("hi", max_tokens=2)
    assert server.stats()["models"] == {served: 2}
    assert await served_models(server.url) == ["fake"]


async def test_systemone_reads_yes_no_and_other_choices(server: FakeServer) -> None:
    server.control(systemone=True)
    async with model(server, None, "systemone") as m:
        p = await m.choice_probs(PROMPT, ["No", "Yes"])
        q = await m.choice_probs(PROMPT, ["A", "B", "C"])
    assert p.method == "systemone" and p["Yes"] == pytest.approx(p_yes(PROMPT))
    assert q["A"] == pytest.approx(p_yes(PROMPT)) and q["B"] == pytest.approx(q["C"])
