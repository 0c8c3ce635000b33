"""What a study leaves in its folder: ``best_config.yaml``, the best trial's checkpoint, and ``study.html``
(optimization history, parameter importances, parallel coordinates, the trials table, pruned trials)."""

from __future__ import annotations

import html
import json
import shutil
from pathlib import Path

import optuna
import yaml
from optuna.trial import TrialState

from trainpilot.config import apply_overrides, read_config_file


def best_trial(study: optuna.Study) -> optuna.trial.FrozenTrial | None:
    done = [t for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)) if t.value is not None]
    return max(done, key=lambda t: t.value) if done else None


def best_config(spec, trial: optuna.trial.FrozenTrial) -> dict:
    """The winner's starting config: the study's fixed keys, the trial's params and its automatic choices,
    so that ``trainpilot train --config best_config.yaml`` trains it again (the controller included)."""
    data = read_config_file(spec.config) if spec.config else {}
    data = apply_overrides(data, spec.overrides + [f"{k}={json.dumps(v)}" for k, v in
                                                   {**(trial.user_attrs.get("auto") or {}),
                                                    **(trial.user_attrs.get("params_used") or trial.params)}.items()])
    if not spec.controller:
        data = apply_overrides(data, ["intelligent_training.enabled=false"])
    return data


def write_outputs(spec, study: optuna.Study) -> dict[str, Path]:
    out: dict[str, Path] = {}
    best = best_trial(study)
    root = spec.path
    if best is not None:
        out["best_config"] = root / "best_config.yaml"
        text = (f"# best trial {best.number} of study {spec.name}: {best.user_attrs.get('monitor', 'value')} "
                f"{best.value:.4f} (validation)\n" + yaml.safe_dump(best_config(spec, best), sort_keys=False,
                                                                    allow_unicode=True))
        out["best_config"].write_text(text, encoding="utf-8")
        ckpt = Path(best.user_attrs.get("run_dir", "")) / "checkpoints" / "best.pt"
        if ckpt.is_file():
            out["best_checkpoint"] = root / "best.pt"
            shutil.copy2(ckpt, out["best_checkpoint"])
    out["report"] = write_report(spec, study, root / "study.html")
    return out


def _fig(fn, study) -> str:
    try:
        return fn(study).to_html(full_html=False, include_plotlyjs=False)
    except Exception as err:  # noqa: BLE001 - e.g. importances need two finished trials with varied params
        return f"<p class='note'>not shown: {html.escape(str(err).splitlines()[0] if str(err) else type(err).__name__)}</p>"


def _cell(v) -> str:
    if isinstance(v, float):
        return f"{v:.4g}"
    return html.escape("-" if v is None else str(v))


def write_report(spec, study: optuna.Study, path: Path) -> Path:
    import plotly.offline
    from optuna import visualization as vis

    js = path.parent / "plotly.min.js"
    if not js.exists():
        js.write_text(plotly.offline.get_plotlyjs(), encoding="utf-8")
    trials = study.get_trials(deepcopy=False)
    keys = list(spec.space)
    head = "".join(f"<th>{html.escape(k)}</th>" for k in
                   ["#", "state", "value", *keys, "test macro-F1", "epochs", "controller changes", "diagnosis", "run"])
    rows = []
    for t in trials:
        test = (t.user_attrs.get("test") or {}).get("macro_f1")
        changes = "<br>".join(html.escape(a["text"]) for a in t.user_attrs.get("adjustments") or []) or "-"
        run = Path(t.user_attrs.get("run_dir", "")).name
        link = f"<a href='{html.escape(run)}/reports/summary.html'>{html.escape(run)}</a>" if run else "-"
        params = t.user_attrs.get("params_used") or t.params  # what the run trained with (4 significant digits)
        values = [t.number, t.state.name.lower(), t.value, *[params.get(k) for k in keys], test, t.user_attrs.get("epochs")]
        tds = "".join(f"<td>{_cell(c)}</td>" for c in values)
        tds += f"<td>{changes}</td><td>{_cell(t.user_attrs.get('diagnosis'))}</td><td>{link}</td>"
        rows.append(f"<tr class='{t.state.name.lower()}'>{tds}</tr>")
    pruned = [t for t in trials if t.state == TrialState.PRUNED]
    pruned_html = "".join(f"<li>trial {t.number}: {html.escape(str(t.user_attrs.get('stop_reason', '')))}</li>"
                          for t in pruned) or "<li>none</li>"
    best = best_trial(study)
    best_line = (f"best: trial {best.number}, {html.escape(str(best.user_attrs.get('monitor', 'value')))} "
                 f"{best.value:.4f}" if best else "no finished trial yet")
    figures = "".join(f"<h2>{title}</h2>{_fig(fn, study)}" for title, fn in (
        ("Optimization history", vis.plot_optimization_history), ("Parameter importances", vis.plot_param_importances),
        ("Parallel coordinates", vis.plot_parallel_coordinate), ("Intermediate values", vis.plot_intermediate_values)))
    counts = {s: sum(1 for t in trials if t.state == s) for s in TrialState}
    summary = ", ".join(f"{n} {s.name.lower()}" for s, n in counts.items() if n)
    path.write_text(f"""<!doctype html><html><head><meta charset="utf-8"><title>study {html.escape(spec.name)}</title>
<script src="plotly.min.js"></script><style>
body{{font-family:system-ui,sans-serif;margin:2em;color:#222}} table{{border-collapse:collapse;font-size:13px}}
td,th{{border:1px solid #ddd;padding:4px 8px;text-align:left;vertical-align:top}} th{{background:#f4f4f4}}
tr.pruned{{color:#888}} tr.fail{{color:#b00}} .note{{color:#888}}</style></head><body>
<h1>Study {html.escape(spec.name)}</h1><p>{len(trials)} trials ({summary}); sampler {spec.sampler}, pruner {spec.pruner},
controller {'on' if spec.controller else 'off'}. {best_line}. Values are on validation data; test macro-F1 is shown for each trial.</p>
<h2>Trials</h2><table><tr>{head}</tr>{''.join(rows)}</table>
<h2>Pruned trials</h2><ul>{pruned_html}</ul>{figures}</body></html>""", encoding="utf-8")
    return path
