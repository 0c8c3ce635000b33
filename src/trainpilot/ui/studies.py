"""Study pages: the studies under the runs folder (``trainpilot tune``), one study's trials, and its
files (study.html with its plots, each trial's summary.html), read through :mod:`trainpilot.search.store`."""

from __future__ import annotations

import re
from pathlib import Path

from fastapi import APIRouter, Request
from fastapi.responses import FileResponse, HTMLResponse

from trainpilot.runs import RunStoreError
from trainpilot.ui import security
from trainpilot.ui.api import lang_of, ui
from trainpilot.ui.i18n import strings
from trainpilot.ui.pages import page

router = APIRouter()
STUDY_FILES = ("study.html", "plotly.min.js", "best_config.yaml")
TRIAL_FILE = re.compile(r"^trial_\d{4,}/reports/summary\.html$")
# study.html draws its plots with the plotly.min.js beside it and inline calls; nothing else may load
STUDY_CSP = "default-src 'none'; script-src 'self' 'unsafe-inline'; style-src 'unsafe-inline'; img-src data:"


def study_dir(request: Request, name: str) -> Path:
    """The study ``name`` directly under the runs folder; a path, a hidden folder or a symlink out is refused."""
    from trainpilot.search.store import is_study

    root = ui(request).runs_dir.resolve()
    if name and not name.startswith((".", "_")) and not any(c in name for c in "/\\\0"):
        real = (root / name).resolve()
        if real.parent == root and is_study(real):
            return real
    raise RunStoreError(f"no study '{name}' in {root}; studies are made by trainpilot tune")


@router.get("/studies", response_class=HTMLResponse)
def studies_page(request: Request):
    from trainpilot.search.store import list_studies, read_study

    rows = []
    for d in list_studies(ui(request).runs_dir):
        try:
            rows.append({"dir": d.name, **read_study(d)})
        except Exception as err:  # noqa: BLE001 - one unreadable study is shown as such, not a broken page
            rows.append({"dir": d.name, "name": d.name, "error": str(err).splitlines()[0], "trials": []})
    return page(request, "studies.html", strings(lang_of(request))["nav.studies"], nav="studies", studies=rows)


@router.get("/studies/{name}", response_class=HTMLResponse)
def study_page(name: str, request: Request):
    from trainpilot.search.store import read_study

    path = study_dir(request, name)
    return page(request, "study.html", name, nav="studies", s=read_study(path), dir=path.name)


@router.get("/studies/{name}/files/{file:path}")
def study_file(name: str, file: str, request: Request):
    """study.html, its plotly.min.js, best_config.yaml, and trial_NNNN/reports/summary.html; nothing else."""
    root = study_dir(request, name)
    if file in STUDY_FILES or TRIAL_FILE.match(file):
        path = root / file
        if path.is_file() and root in path.resolve().parents:
            media = {".yaml": "text/plain; charset=utf-8", ".js": "text/javascript"}.get(path.suffix)
            csp = STUDY_CSP if path.name == "study.html" else security_csp(path)
            return FileResponse(path.resolve(), media_type=media, headers={"Content-Security-Policy": csp})
    raise security.Forbidden(f"study '{name}' has no file '{file}'")


def security_csp(path: Path) -> str:
    from trainpilot.ui.pages import SUMMARY_CSP

    return SUMMARY_CSP if path.suffix == ".html" else "default-src 'none'"
