"""HTML pages (Jinja2) and the files of a run. Pages are thin shells: their data comes from the JSON and
event-stream routes in :mod:`trainpilot.ui.api`, so what a script sees is what a person sees."""

from __future__ import annotations

import json
from pathlib import Path

from fastapi import APIRouter, Request
from fastapi.responses import FileResponse, HTMLResponse
from fastapi.templating import Jinja2Templates
from markdown_it import MarkdownIt

from trainpilot import __version__
from trainpilot.ui import security
from trainpilot.ui.api import lang_of, ui
from trainpilot.ui.i18n import strings

router = APIRouter()
templates = Jinja2Templates(directory=str(Path(__file__).parent / "templates"))
_md = MarkdownIt("commonmark", {"html": False, "linkify": False}).enable("table")
ASSET_VERSION = __version__ + "-" + str(int(max(p.stat().st_mtime for p in (Path(__file__).parent / "static").rglob("*")
                                                if p.is_file())))
SUMMARY_CSP = "default-src 'none'; img-src data:; style-src 'unsafe-inline'"


def page(request: Request, template: str, title: str, **context) -> HTMLResponse:
    lang = lang_of(request)
    t = strings(lang)
    response = templates.TemplateResponse(request, template, {
        "t": t, "lang": lang, "title": title, "token": ui(request).token, "version": __version__, "v": ASSET_VERSION,
        "strings_json": json.dumps(t, ensure_ascii=False), "path": request.url.path, **context})
    if request.query_params.get("lang") in ("zh", "en"):
        response.set_cookie("lang", request.query_params["lang"], max_age=365 * 86400, samesite="strict")
    return response


@router.get("/", response_class=HTMLResponse)
def runs_page(request: Request):
    return page(request, "runs.html", strings(lang_of(request))["runs.title"], nav="runs")


@router.get("/latest")
def latest(request: Request):
    """The newest running run (else the newest run): where `trainpilot train --ui` points."""
    from fastapi.responses import RedirectResponse

    runs = ui(request).runs()
    live = [r for r in runs if r.status.state == "running"]
    target = (live or runs or [None])[-1]
    return RedirectResponse(f"/runs/{target.id}" if target else "/", status_code=303)


@router.get("/runs/{run_id}", response_class=HTMLResponse)
def run_page(run_id: str, request: Request):
    st = ui(request)
    if run_id in st.launched and not (st.runs_dir / run_id / "status.json").exists():
        return page(request, "starting.html", run_id, nav="runs", run_id=run_id)
    from trainpilot.jsonio import sanitize_for_json
    from trainpilot.ui.state import signature_key
    from trainpilot.ui.views import run_detail

    run = st.run(run_id)
    since = signature_key(run)  # the page shows this state; the event stream sends only what comes after it
    detail = json.dumps(sanitize_for_json(run_detail(run, lang_of(request))), ensure_ascii=False).replace("</", "<\\/")
    return page(request, "run.html", run.id, nav="runs", run_id=run.id, detail_json=detail, since=since)


@router.get("/compare", response_class=HTMLResponse)
def compare_page(request: Request):
    ids = request.query_params.getlist("run")
    for run_id in ids:
        ui(request).run(run_id)  # an unknown id is said now, not by an empty chart
    return page(request, "compare.html", strings(lang_of(request))["compare.title"], nav="compare", run_ids=ids)


@router.get("/new", response_class=HTMLResponse)
def new_page(request: Request):
    from trainpilot.ui import forms

    lang = lang_of(request)
    return page(request, "new.html", strings(lang)["new.title"], nav="new", groups=forms.groups(lang))


@router.get("/predict", response_class=HTMLResponse)
def predict_page(request: Request):
    st = ui(request)
    choices = [{"id": r.id, "checkpoints": sorted(r.checkpoints, key=lambda c: (c != "best", c != "last", c))}
               for r in st.runs() if r.checkpoints]
    return page(request, "predict.html", strings(lang_of(request))["predict.title"], nav="predict", runs=choices,
                selected=request.query_params.get("run"))


@router.get("/runs/{run_id}/reports/{name}", response_class=HTMLResponse)
def report_page(run_id: str, name: str, request: Request):
    """A Markdown report rendered as HTML (raw HTML in it is not passed through)."""
    run = ui(request).run(run_id)
    path = security.run_file(run, f"reports/{name}")
    if path.suffix != ".md":
        raise security.Forbidden(f"'{name}' is not a Markdown report; open it from /runs/{run_id}/files/reports/{name}")
    html = _md.render(path.read_text(encoding="utf-8", errors="replace"))
    return page(request, "report.html", name, nav="runs", run_id=run.id, name=name, body=html)


@router.get("/runs/{run_id}/files/{name:path}")
def run_file(run_id: str, name: str, request: Request):
    """A run's file by a known name (see :func:`security.run_file`); HTML is sandboxed by its CSP."""
    path = security.run_file(ui(request).run(run_id), name)
    media = {".md": "text/markdown; charset=utf-8", ".jsonl": "application/json; charset=utf-8",
             ".json": "application/json; charset=utf-8", ".csv": "text/csv; charset=utf-8"}.get(path.suffix)
    headers = {"Content-Security-Policy": SUMMARY_CSP if path.suffix == ".html" else "default-src 'none'"}
    return FileResponse(path, media_type=media, headers=headers)
