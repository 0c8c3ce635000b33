"""The dashboard's web application: :func:`create_app` wires the store, the guard and the routes."""

from __future__ import annotations

import html
import json
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, PlainTextResponse
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Receive, Scope, Send

from trainpilot.config import ConfigError
from trainpilot.runs import RunStoreError
from trainpilot.ui import security
from trainpilot.ui.launch import LaunchError
from trainpilot.ui.state import UIState

HERE = Path(__file__).parent


class Guard:
    """Host, token, method and Origin checks on every request; secrets masked in every response."""

    def __init__(self, app: ASGIApp, state: UIState):
        self.app, self.state = app, state

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        request = Request(scope)
        st = self.state
        header_token, other_token = security.request_token(request.headers, dict(request.query_params),
                                                           request.cookies)
        refusal = None
        if not security.host_allowed(request.headers.get("host"), st.allowed_hosts):
            refusal = (400, "this dashboard answers only to its own address (Host header refused)")
        elif request.method not in ("GET", "HEAD", "POST"):
            refusal = (405, f"{request.method} is not allowed; the dashboard changes things by POST only")
        elif request.method == "POST":
            if not security.token_matches(header_token, st.token):
                refusal = (401, "a wrong or missing token: POST requests need the X-Token header")
            elif not security.origin_allowed(request.headers.get("origin"), request.headers.get("host")):
                refusal = (403, "the request comes from another site (Origin does not match)")
        elif st.require_token and not (security.token_matches(header_token, st.token)
                                       or security.token_matches(other_token, st.token)):
            refusal = (401, "a wrong or missing token: open the URL with ?token=… as printed by `trainpilot ui`")
        if refusal is not None:
            code, message = refusal
            wants_json = request.url.path.startswith("/api/") or request.method == "POST"
            response = (JSONResponse({"error": message}, status_code=code) if wants_json else
                        PlainTextResponse(f"error: {message}", status_code=code))
            return await response(scope, receive, send)
        set_cookie = request.query_params.get("token") and security.token_matches(request.query_params["token"], st.token)
        secrets_ = security.secret_values()

        async def guarded_send(message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers") or [])
                headers += [(b"x-content-type-options", b"nosniff"), (b"referrer-policy", b"no-referrer"),
                            (b"x-frame-options", b"DENY")]
                if request.url.path.startswith("/static/") and request.query_params.get("v"):
                    headers.append((b"cache-control", b"public, max-age=86400, immutable"))  # versioned URLs
                if set_cookie:
                    headers.append((b"set-cookie", f"{security.COOKIE}={st.token}; HttpOnly; SameSite=Strict; "
                                                   f"Path=/".encode()))
                message = {**message, "headers": headers}
            elif message["type"] == "http.response.body" and secrets_:
                message = {**message, "body": security.mask(message.get("body", b""), secrets_)}
            await send(message)

        await self.app(scope, receive, guarded_send)


def _error(status: int | None):
    async def handler(request: Request, exc: Exception):
        code = status or getattr(exc, "status_code", 500)
        detail = getattr(exc, "detail", None) if status is None else None
        text = str(detail or exc)
        message = text.splitlines()[0] if text else type(exc).__name__
        if code == 404 and status is None:
            message = f"no page {request.url.path}; the runs are at /"
        elif code == 405:
            message = f"{request.method} is not allowed here; the dashboard changes things by POST only"
        if request.url.path.startswith("/api/"):
            return JSONResponse({"error": message}, status_code=code)
        body = (f"<!doctype html><meta charset=utf-8><title>error</title><link rel=stylesheet href=/static/app.css>"
                f"<main class=page><div class='panel error-page'><h1>{code}</h1><p>{html.escape(message)}</p>"
                f"<p><a href='/'>← runs</a></p></div></main>")
        from fastapi.responses import HTMLResponse

        return HTMLResponse(body, status_code=code)
    return handler


def create_app(runs_dir: str | Path, token: str | None = None, require_token: bool = False,
               allowed_hosts: set[str] | None = None) -> FastAPI:
    """The dashboard for ``runs_dir``. ``token``: what POSTs (and, with ``require_token``, every request)
    must carry; one is generated when not given. ``allowed_hosts``: Host names it answers to (None: any)."""
    from trainpilot.ui import api, pages, studies

    state = UIState(Path(runs_dir).expanduser(), token or security.new_token(), require_token, allowed_hosts)
    app = FastAPI(title="trainpilot", docs_url=None, redoc_url=None, openapi_url=None)
    app.state.ui = state
    app.mount("/static", StaticFiles(directory=HERE / "static"), name="static")
    app.include_router(api.router)
    app.include_router(pages.router)
    app.include_router(studies.router)
    from trainpilot.data.folder import DatasetError
    from trainpilot.inference import InferenceError
    from trainpilot.tuning.cli import DecisionError

    for exc, status in ((RunStoreError, 404), (security.Forbidden, 404), (DecisionError, 409), (LaunchError, 409),
                        (ConfigError, 422), (DatasetError, 400), (InferenceError, 400), (ValueError, 400),
                        (OSError, 400), (json.JSONDecodeError, 400)):
        app.add_exception_handler(exc, _error(status))
    app.add_exception_handler(StarletteHTTPException, _error(None))
    app.add_exception_handler(Exception, _error(500))
    app.add_middleware(Guard, state=state)
    return app
