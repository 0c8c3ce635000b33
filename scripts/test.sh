#!/usr/bin/env bash
# Fresh machine -> installed trainpilot with its test extras -> the whole test suite,
# including the tests marked `llm` that start a real local LLM server.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh test,llmtest
# The dashboard's browser tests drive Debian's Chromium (Playwright cannot download a browser here), with a
# CJK font so that the zh pages in their screenshots show characters, not boxes.
CJK_FONT=/usr/share/fonts/truetype/wqy/wqy-microhei.ttc
if { [ ! -x /usr/bin/chromium ] || [ ! -f $CJK_FONT ]; } && command -v apt-get >/dev/null && [ "$(id -u)" = 0 ]; then
  apt-get install -y -qq chromium fonts-wqy-microhei >/dev/null 2>&1 \
    || { apt-get update -qq && apt-get install -y -qq chromium fonts-wqy-microhei >/dev/null; } || true
fi
[ -x /usr/bin/chromium ] || echo "note: /usr/bin/chromium is missing and could not be installed: the browser tests are skipped" >&2
export HF_HUB_OFFLINE=1  # no test may download anything
# PostgreSQL on loopback for the multi-machine study test (installed from Debian's packages when missing)
for line in $(bash scripts/services.sh); do export "$line"; done
exec .venv/bin/python -m pytest -q "$@"
