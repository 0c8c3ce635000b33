"""LLM clients against a misbehaving local HTTP server, plus the pure helpers
(settings, presets, retry delays, JSON extraction)."""

from __future__ import annotations

import json
import pickle
import secrets
import threading
import time
import typing
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from pydantic import ValidationError

from trainpilot.llm import PRESETS, LLMError, LLMSettings, create_client, extract_json
from trainpilot.llm.llamacpp_local import LlamaCppLocalClient
from trainpilot.llm.ollama import OllamaClient
from trainpilot.llm.openai_compat import OpenAICompatClient
from trainpilot.llm.retry import backoff_delay

SCHEMA = {"type": "object", "properties": {"lr": {"type": "number"}}, "required": ["lr"]}
MESSAGES = [{"role": "user", "content": "propose a learning rate as JSON"}]
MAX_SERVER_SLEEP_S = 5.0  # bounds every scripted delay so a stuck test cannot hang the suite


@dataclass
class Scripted:
    """One canned HTTP response."""

    status: int = 200
    body: bytes | dict | str = b""
    headers: dict[str, str] = field(default_factory=dict)
    delay_s: float = 0.0
    send_length: bool = True


@dataclass
class Seen:
    path: str
    headers: dict[str, str]
    body: dict


class FakeLLMServer:
    """ThreadingHTTPServer on 127.0.0.1:<free port>; replies to POSTs from per-path FIFO scripts
    and records every request. Unscripted requests get a 599 so extra calls are visible."""

    def __init__(self) -> None:
        self.scripts: dict[str, list[Scripted]] = {}
        self.seen: list[Seen] = []
        self.stopping = threading.Event()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:  # keep test output clean
                pass

            def do_POST(self) -> None:
                raw = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                outer.seen.append(
                    Seen(self.path, {k.lower(): v for k, v in self.headers.items()}, json.loads(raw or b"{}"))
                )
                queue = outer.scripts.get(self.path) or []
                reply = queue.pop(0) if queue else Scripted(599, {"error": "unscripted request"})
                outer.stopping.wait(min(reply.delay_s, MAX_SERVER_SLEEP_S))
                body = reply.body
                if isinstance(body, dict):
                    body = json.dumps(body)
                if isinstance(body, str):
                    body = body.encode()
                try:
                    self.send_response(reply.status)
                    self.send_header("Content-Type", "application/json")
                    if reply.send_length:
                        self.send_header("Content-Length", str(len(body)))
                    for name, value in reply.headers.items():
                        self.send_header(name, value)
                    self.end_headers()
                    self.wfile.write(body)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up (timeout / size limit); that is the point

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.httpd.block_on_close = False
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(
            target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    def script(self, path: str, *replies: Scripted) -> None:
        self.scripts[path] = list(replies)

    def requests_to(self, path: str) -> list[Seen]:
        return [seen for seen in self.seen if seen.path == path]


@pytest.fixture
def server():
    fake = FakeLLMServer()
    fake.thread.start()
    yield fake
    fake.stopping.set()
    fake.httpd.shutdown()
    fake.httpd.server_close()


def chat_body(content: str | None, model: str = "fake-model") -> dict:
    return {
        "id": "x",
        "object": "chat.completion",
        "created": 0,
        "model": model,
        "choices": [
            {"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": content}}
        ],
        "usage": {"prompt_tokens": 11, "completion_tokens": 7, "total_tokens": 18},
    }


def openai_client(server: FakeLLMServer, **overrides: typing.Any) -> OpenAICompatClient:
    settings = {"base_url": f"{server.url}/v1", "model": "fake-model", "timeout": 2.0, "max_retries": 2}
    client = create_client(LLMSettings(**{**settings, **overrides}))
    assert isinstance(client, OpenAICompatClient)
    return client


CHAT = "/v1/chat/completions"


def failure(client, schema=SCHEMA) -> LLMError:
    with pytest.raises(LLMError) as info:
        client.complete(MESSAGES, schema)
    return info.value


# --- OpenAI-compatible endpoint ------------------------------------------------------------


def test_success_reports_text_model_tokens_and_mode(server):
    server.script(CHAT, Scripted(body=chat_body('{"lr": 0.001}')))
    reply = openai_client(server).complete(MESSAGES, SCHEMA)
    assert (reply.text, reply.model, reply.prompt_tokens, reply.completion_tokens) == (
        '{"lr": 0.001}',
        "fake-model",
        11,
        7,
    )
    assert reply.structured_mode == "json_schema" and reply.latency_s > 0
    sent = server.requests_to(CHAT)[0].body
    assert sent["response_format"] == {
        "type": "json_schema",
        "json_schema": {"name": "proposal", "schema": SCHEMA, "strict": False},
    }
    assert sent["model"] == "fake-model" and sent["max_tokens"] == 1024


def test_timeout_is_reported_without_waiting_for_the_server(server):
    server.script(CHAT, Scripted(body=chat_body("late"), delay_s=3.0))
    started = time.monotonic()
    err = failure(openai_client(server, timeout=0.3, max_retries=0))
    assert err.kind == "timeout" and "timeout=0.3s" in str(err)
    assert time.monotonic() - started < 2.0


def test_server_error_is_retried_then_succeeds(server):
    server.script(
        CHAT, Scripted(500, {"error": {"message": "overloaded"}}), Scripted(body=chat_body('{"lr": 0.1}'))
    )
    reply = openai_client(server).complete(MESSAGES, SCHEMA)
    assert reply.text == '{"lr": 0.1}' and len(server.requests_to(CHAT)) == 2


def test_rate_limit_waits_for_retry_after(server):
    server.script(
        CHAT,
        Scripted(429, {"error": {"message": "slow down"}}, {"Retry-After": "1"}),
        Scripted(body=chat_body("{}")),
    )
    started = time.monotonic()
    openai_client(server).complete(MESSAGES, SCHEMA)
    assert 0.9 <= time.monotonic() - started < 4.0
    assert len(server.requests_to(CHAT)) == 2


def test_auth_failure_is_not_retried(server):
    server.script(CHAT, Scripted(401, {"error": {"message": "invalid api key"}}))
    err = failure(openai_client(server, max_retries=3))
    assert err.kind == "auth" and err.status == 401 and len(server.requests_to(CHAT)) == 1


def test_server_errors_exhaust_retries_and_say_so(server):
    server.script(CHAT, *[Scripted(503, {"error": "down"}, {"Retry-After": "0"})] * 3)
    err = failure(openai_client(server, max_retries=2))
    assert err.kind == "server" and "gave up after 3 attempts" in str(err)
    assert len(server.requests_to(CHAT)) == 3


def test_non_json_body_is_a_server_error_naming_the_endpoint(server):
    server.script(CHAT, Scripted(body=b"<html>502 Bad Gateway</html>"))
    err = failure(openai_client(server))
    assert err.kind == "server" and "not JSON" in str(err) and server.url in str(err)
    assert len(server.requests_to(CHAT)) == 1


@pytest.mark.parametrize("content", [None, "", "   \n"])
def test_empty_reply_is_an_error(server, content):
    server.script(CHAT, Scripted(body=chat_body(content)))
    assert failure(openai_client(server)).kind == "empty"


@pytest.mark.parametrize("send_length", [True, False], ids=["content-length", "read-until-close"])
def test_oversized_reply_is_rejected(server, send_length):
    server.script(CHAT, Scripted(body=chat_body("x" * 1_000_000), send_length=send_length))
    err = failure(openai_client(server))
    assert err.kind == "too_large" and "max_reply_bytes=200000" in str(err)


def test_connection_refused_is_retried_then_reported():
    from llm_server import free_port

    url = f"http://127.0.0.1:{free_port()}/v1"  # nothing listens there
    client = create_client(LLMSettings(base_url=url, model="m", timeout=1.0, max_retries=1))
    err = failure(client)
    assert err.kind == "connection" and url in str(err) and "gave up after 2 attempts" in str(err)


def test_auto_mode_falls_back_to_json_object_and_remembers(server):
    rejected = Scripted(400, {"error": {"message": "response_format json_schema is not supported"}})
    server.script(
        CHAT, rejected, Scripted(body=chat_body('{"lr": 1}')), Scripted(body=chat_body('{"lr": 2}'))
    )
    client = openai_client(server)
    first = client.complete(MESSAGES, SCHEMA)
    second = client.complete(MESSAGES, SCHEMA)
    formats = [seen.body["response_format"]["type"] for seen in server.requests_to(CHAT)]
    assert formats == ["json_schema", "json_object", "json_object"]
    assert first.structured_mode == second.structured_mode == client.structured_mode == "json_object"


def test_auto_mode_treats_a_500_about_response_format_as_a_rejection(server):
    # What llama_cpp.server 0.3 really sends for {"type": "json_schema"}.
    message = (
        "1 validation error: {'loc': ('body', 'response_format', 'type'), "
        "'msg': \"Input should be 'text' or 'json_object'\"}"
    )
    server.script(CHAT, Scripted(500, {"error": {"message": message}}), Scripted(body=chat_body("{}")))
    assert openai_client(server).complete(MESSAGES, SCHEMA).structured_mode == "json_object"
    assert len(server.requests_to(CHAT)) == 2  # no retries of the rejected format


def test_auto_mode_ends_with_plain_text(server):
    rejected = Scripted(400, {"error": {"message": "unknown field response_format"}})
    server.script(CHAT, rejected, rejected, Scripted(body=chat_body('{"lr": 1}')))
    reply = openai_client(server).complete(MESSAGES, SCHEMA)
    assert reply.structured_mode == "none" and "response_format" not in server.requests_to(CHAT)[-1].body


def test_fixed_mode_does_not_fall_back(server):
    server.script(CHAT, Scripted(400, {"error": {"message": "bad"}}))
    err = failure(openai_client(server, structured_output="json_schema"))
    assert err.kind == "bad_request" and len(server.requests_to(CHAT)) == 1


# --- Ollama native API -------------------------------------------------------------------


def ollama_reply(content: str) -> dict:
    # The non-streaming /api/chat response, as in Ollama's docs/api.md.
    return {
        "model": "qwen2.5:7b",
        "created_at": "2024-01-01T00:00:00Z",
        "message": {"role": "assistant", "content": content},
        "done": True,
        "done_reason": "stop",
        "total_duration": 1,
        "load_duration": 1,
        "prompt_eval_count": 26,
        "prompt_eval_duration": 1,
        "eval_count": 9,
        "eval_duration": 1,
    }


def test_ollama_request_and_response_format(server):
    server.script("/api/chat", Scripted(body=ollama_reply('{"lr": 0.01}')))
    client = create_client(LLMSettings(preset="ollama", base_url=server.url, temperature=0.0, max_tokens=64))
    assert isinstance(client, OllamaClient)
    reply = client.complete(MESSAGES, SCHEMA)
    sent = server.requests_to("/api/chat")[0].body
    assert sent == {
        "model": "qwen2.5:7b",
        "messages": MESSAGES,
        "stream": False,
        "format": SCHEMA,
        "options": {"temperature": 0.0, "num_predict": 64},
    }
    assert (reply.text, reply.model, reply.prompt_tokens, reply.completion_tokens) == (
        '{"lr": 0.01}',
        "qwen2.5:7b",
        26,
        9,
    )
    assert reply.structured_mode == "json_schema"


def test_ollama_json_mode_retry_and_missing_model(server):
    server.script(
        "/api/chat",
        Scripted(503, {"error": "busy"}, {"Retry-After": "0"}),
        Scripted(body=ollama_reply("{}")),
        Scripted(404, {"error": "model 'nope' not found"}),
    )
    client = create_client(LLMSettings(preset="ollama", base_url=server.url, structured_output="json_object"))
    assert client.complete(MESSAGES, SCHEMA).structured_mode == "json_object"
    assert [seen.body["format"] for seen in server.requests_to("/api/chat")] == ["json", "json"]
    err = failure(client)
    assert (
        err.kind == "bad_request"
        and "ollama pull qwen2.5:7b" in str(err)
        and "model 'nope' not found" in str(err)
    )


def test_ollama_auto_mode_falls_back_to_json_when_schema_rejected(server):
    server.script(
        "/api/chat",
        Scripted(400, {"error": "invalid format"}),
        Scripted(body=ollama_reply("{}")),
        Scripted(body=ollama_reply("{}")),
    )
    client = create_client(LLMSettings(preset="ollama", base_url=server.url))
    modes = [client.complete(MESSAGES, SCHEMA).structured_mode for _ in range(2)]
    assert modes == ["json_object", "json_object"]
    assert [seen.body["format"] for seen in server.requests_to("/api/chat")] == [SCHEMA, "json", "json"]


# --- secrets never leak ------------------------------------------------------------------


def test_api_key_never_appears_in_errors(server, monkeypatch):
    key = "sk-test-" + secrets.token_hex(16)
    monkeypatch.setenv("TRAINPILOT_TEST_KEY", key)
    echoed = {"error": {"message": f"Incorrect API key provided: {key}; masked {key[:6]}***{key[-4:]}"}}
    server.script(
        CHAT,
        Scripted(401, echoed),
        Scripted(500, {"error": f"Bearer {key}"}),
        Scripted(body=b"x" + key.encode()),
    )
    client = openai_client(server, api_key_env="TRAINPILOT_TEST_KEY", max_retries=0)
    errors = [failure(client) for _ in range(3)]
    assert server.requests_to(CHAT)[0].headers["authorization"] == f"Bearer {key}"  # the key was really sent
    from llm_server import free_port

    closed_url = f"http://127.0.0.1:{free_port()}/v1"
    closed = create_client(
        LLMSettings(base_url=closed_url, model="m", api_key_env="TRAINPILOT_TEST_KEY", max_retries=0)
    )
    errors.append(failure(closed))
    assert [e.kind for e in errors] == ["auth", "server", "server", "connection"]
    assert "TRAINPILOT_TEST_KEY" in str(errors[0])  # says where the key comes from...
    for err in errors:
        for text in (str(err), repr(err), repr(err.args)):
            assert key not in text and key[-8:] not in text  # ...never what it is


# --- settings, presets, factory ----------------------------------------------------------


def test_presets_table_matches_the_settings_literal():
    literal = typing.get_args(LLMSettings.model_fields["preset"].annotation)[0]
    assert set(typing.get_args(literal)) == set(PRESETS)


def test_preset_defaults_fill_only_unset_fields():
    resolved = LLMSettings(preset="qwen", model="qwen-max").resolved()
    assert (resolved.base_url, resolved.model, resolved.api_key_env) == (
        "https://dashscope.aliyuncs.com/compatible-mode/v1",
        "qwen-max",
        "DASHSCOPE_API_KEY",
    )
    assert LLMSettings(preset="qwen", api_key_env="MY_KEY").resolved().api_key_env == "MY_KEY"


def test_missing_key_is_a_config_error(monkeypatch):
    monkeypatch.delenv("DEEPSEEK_API_KEY", raising=False)
    err = failure_of(lambda: create_client(LLMSettings(preset="deepseek")))
    assert err.kind == "config"
    expected = "environment variable DEEPSEEK_API_KEY is not set; export it or set intelligent_training.llm"
    assert f"{expected}.api_key_env" in str(err)


def test_settings_reject_bad_values_without_echoing_them():
    with pytest.raises(ValidationError) as info:
        LLMSettings(api_key_env="sk-abcdef0123456789")
    assert "NAME of an environment variable" in str(info.value) and "abcdef0123456789" not in str(info.value)
    for bad in (
        {"temperature": 3},
        {"max_tokens": 8},
        {"timeout": 0},
        {"max_retries": 11},
        {"api_key": "x"},
        {"base_url": "api.x.com"},
    ):
        with pytest.raises(ValidationError):
            LLMSettings(**bad)


def test_factory_picks_backend(tmp_path):
    assert isinstance(create_client(LLMSettings(preset="llamacpp-server")), OpenAICompatClient)
    assert isinstance(create_client(LLMSettings(base_url="http://127.0.0.1:11434", model="m")), OllamaClient)
    gguf = tmp_path / "m.gguf"
    gguf.write_bytes(b"GGUF")
    assert isinstance(create_client(LLMSettings(gguf_path=str(gguf))), LlamaCppLocalClient)
    missing = failure_of(
        lambda: create_client(LLMSettings(preset="local-gguf", gguf_path=str(tmp_path / "no.gguf")))
    )
    assert missing.kind == "config" and str(tmp_path / "no.gguf") in str(missing)
    assert failure_of(lambda: create_client(LLMSettings())).kind == "config"


def failure_of(build) -> LLMError:
    with pytest.raises(LLMError) as info:
        build()
    return info.value


def test_llm_error_survives_pickling():
    err = LLMError(
        "rate_limit", "HTTP 429: slow down", backend="ollama", base_url="http://h:1", retry_after=2.0
    )
    copy = pickle.loads(pickle.dumps(err))
    assert (str(copy), copy.kind, copy.retry_after, copy.retryable) == (str(err), "rate_limit", 2.0, True)


def test_backoff_is_exponential_and_capped():
    assert [backoff_delay(n, None) for n in range(3)] == [0.5, 1.0, 2.0]
    assert (
        backoff_delay(20, None) == 30.0 and backoff_delay(0, 120.0) == 30.0 and backoff_delay(0, 1.0) == 1.0
    )


# --- extract_json ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text, expected",
    [
        ('{"lr": 0.001}', {"lr": 0.001}),
        (
            'Here you go:\n```json\n{"lr": 0.01, "note": "a } brace"}\n```\nGood luck',
            {"lr": 0.01, "note": "a } brace"},
        ),
        ('Answer: {"a": {"b": [1, 2]}} and {"c": 3}', {"a": {"b": [1, 2]}}),
        ('{not json} then {"ok": true}', {"ok": True}),
        ('<think>maybe {"lr": 9}?</think>{"lr": 0.1}', {"lr": 0.1}),
    ],
)
def test_extract_json_finds_the_object(text, expected):
    assert extract_json(text) == expected


@pytest.mark.parametrize(
    "text, reason", [("", "empty"), ("[1, 2]", "no JSON object"), ('{"unterminated": 1', "no JSON object")]
)
def test_extract_json_explains_failure(text, reason):
    with pytest.raises(ValueError, match=reason):
        extract_json(text)
