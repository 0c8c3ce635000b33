"""JSON and event-stream routes. Every run is found by id through the store; every decision goes through
:func:`trainpilot.tuning.cli.decide`; every start/stop/resume through :mod:`trainpilot.ui.launch`."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from sse_starlette.sse import EventSourceResponse

from trainpilot.jsonio import sanitize_for_json
from trainpilot.ui import forms, launch, views
from trainpilot.ui.i18n import pick_lang
from trainpilot.ui.state import UIState, signature_key

router = APIRouter(prefix="/api")
POLL_S = 0.4  # how often a live page's run is checked: new points appear well within 2 s


def ui(request: Request) -> UIState:
    return request.app.state.ui


def lang_of(request: Request) -> str:
    return pick_lang(request.query_params.get("lang"), request.cookies.get("lang"),
                     request.headers.get("accept-language"))


def ok(data: Any, status: int = 200) -> JSONResponse:
    return JSONResponse(sanitize_for_json(data), status_code=status)


async def body(request: Request) -> dict:
    try:
        data = await request.json()
    except ValueError:
        raise ValueError("the request body is not JSON; send a JSON object") from None
    if not isinstance(data, dict):
        raise ValueError("the request body must be a JSON object")
    return data


@router.get("/runs")
def runs(request: Request):
    st = ui(request)
    st.reap()
    return ok({"runs": [st.row(r, row_of) for r in st.runs()]})


def row_of(run) -> dict:
    return views.runs_table([run])[0]


@router.get("/runs/{run_id}")
def run(run_id: str, request: Request):
    return ok(views.run_detail(ui(request).run(run_id), lang_of(request)))


@router.get("/runs/{run_id}/events")
async def events(run_id: str, request: Request):
    """The run's detail now (unless ``?since=`` names the state the page already shows), then again each time
    one of its files changes (server-sent events)."""
    st, lang = ui(request), lang_of(request)
    run_obj = st.run(run_id)

    async def stream():
        last, beat = request.query_params.get("since"), time.monotonic()
        while not await request.is_disconnected():
            sig = await asyncio.to_thread(signature_key, run_obj)
            if sig != last:
                last = sig
                detail = await asyncio.to_thread(views.run_detail, run_obj, lang)
                yield {"event": "detail", "data": json.dumps(sanitize_for_json(detail), ensure_ascii=False)}
                beat = time.monotonic()
            elif time.monotonic() - beat > 15:
                yield {"event": "ping", "data": "{}"}
                beat = time.monotonic()
            await asyncio.sleep(POLL_S)

    return EventSourceResponse(stream(), headers={"Cache-Control": "no-store"})


@router.post("/runs/{run_id}/adjustments/{adj_id}/{decision}")
async def decide(run_id: str, adj_id: str, decision: str, request: Request):
    from trainpilot.tuning.cli import decide as record_decision

    if decision not in ("approve", "reject"):
        return ok({"error": f"'{decision}' is not approve or reject"}, 404)
    data = await body(request) if (await request.body()) else {}
    entry = record_decision(ui(request).run(run_id), adj_id, decision, note=str(data.get("note") or ""),
                            by="dashboard")
    return ok({"decision": entry})


@router.post("/runs/{run_id}/stop")
def stop(run_id: str, request: Request):
    return ok({"stopping": launch.stop_run(ui(request).run(run_id))})


@router.post("/runs/{run_id}/resume")
def resume(run_id: str, request: Request):
    st = ui(request)
    r = st.run(run_id)
    st.launched[r.id] = proc = launch.resume_run(r)
    return ok({"resumed": r.id, "pid": proc.pid})


@router.get("/compare")
def compare(request: Request):
    st = ui(request)
    ids = request.query_params.getlist("run")
    if len(ids) < 2:
        raise ValueError("give two or more runs: /api/compare?run=A&run=B")
    return ok(views.compare([st.run(i) for i in ids]))


@router.get("/schema")
def schema(request: Request):
    return ok({"groups": forms.groups(lang_of(request))})


@router.post("/validate")
async def validate(request: Request):
    data = await body(request)
    values = forms.read_values(data.get("values") or {})
    return ok({"errors": forms.validate(values, str(data.get("data_dir") or "")), "values": values})


@router.post("/preview")
async def preview(request: Request):
    from trainpilot.ui.media import preview_dataset

    data = await body(request)
    values = forms.read_values(data.get("values") or {})
    return ok(await asyncio.to_thread(preview_dataset, str(data.get("data_dir") or ""), values))


@router.post("/start")
async def start(request: Request):
    from trainpilot.engine.rundir import new_session_id

    st = ui(request)
    data = await body(request)
    data_dir = str(data.get("data_dir") or "").strip()
    values = forms.read_values(data.get("values") or {})
    errors = forms.validate(values, data_dir)
    if not data_dir:
        errors["data_dir"] = "config key 'data_dir' is empty; give the dataset folder"
    if errors:
        return ok({"errors": errors}, 422)
    from trainpilot.data.folder import scan_dataset

    scan_dataset(data_dir)  # a missing or empty dataset is said here, not in a log
    model = str(values.get("model_name") or "run").replace("/", "_")
    name = new_session_id(model, st.runs_dir, str(data.get("name")).strip() if data.get("name") else None)
    st.runs_dir.mkdir(parents=True, exist_ok=True)
    proc = launch.start_run(st.runs_dir, name, {**forms.as_overrides(values), "data_dir": data_dir})
    st.launched[name] = proc
    return ok({"id": name, "url": f"/runs/{name}", "pid": proc.pid})


@router.get("/launched/{name}")
def launched(name: str, request: Request):
    """A run started here: whether its directory exists yet, or the error it ended with."""
    st = ui(request)
    proc = st.launched.get(name)
    if proc is None:
        raise launch.LaunchError(f"no run '{name}' was started from this dashboard")
    exists = (st.runs_dir / name / "status.json").exists()
    code = proc.poll()
    return ok({"ready": exists, "exit_code": code,
               "error": launch.last_error(st.runs_dir, name) if code not in (None, 0) else None})


@router.post("/predict")
async def predict(request: Request):
    from trainpilot.ui.media import predict_images

    st = ui(request)
    form = await request.form()
    run_obj = st.run(str(form.get("run") or ""))
    uploads = []
    for item in form.getlist("files"):
        if hasattr(item, "read"):
            uploads.append((item.filename or "image", await item.read()))
    top_k = int(form.get("top_k") or 3)
    return ok(await asyncio.to_thread(predict_images, st, run_obj, str(form.get("checkpoint") or "best"),
                                      uploads, str(form.get("folder") or ""), top_k))
