#!/usr/bin/env bash
# Fresh machine -> installed trainpilot with its test extras -> the whole test suite,
# including the tests marked `llm` that start a real local LLM server.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh test,llmtest
export HF_HUB_OFFLINE=1  # no test may download anything
# PostgreSQL on loopback for the multi-machine study test (installed from Debian's packages when missing)
for line in $(bash scripts/services.sh); do export "$line"; done
exec .venv/bin/python -m pytest -q "$@"
