"""The package layers import one way: config never loads the LLM clients, the clients never load tuning."""

from __future__ import annotations

import subprocess
import sys
from typing import get_args


def _loaded_after(statement: str) -> set[str]:
    code = f"import sys; {statement}; print(' '.join(m for m in sys.modules if m.startswith('trainpilot')))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    return set(out.split())


def test_config_does_not_import_the_llm_package_and_llm_does_not_import_tuning():
    assert not any(m.startswith("trainpilot.llm.") or m == "trainpilot.llm" for m in _loaded_after("import trainpilot.config"))
    assert not any(m.startswith("trainpilot.tuning") for m in _loaded_after("import trainpilot.llm"))


def test_preset_names_in_the_schema_match_the_preset_table():
    from trainpilot.llm.presets import PRESETS
    from trainpilot.llm_settings import PresetName

    assert set(get_args(PresetName)) == set(PRESETS)
