#!/usr/bin/env bash
# Fresh machine -> installed trainpilot (with the dashboard) -> the demo (synthetic defect images, about 3 minutes on 2 CPU cores).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh ui
exec .venv/bin/trainpilot demo "$@"
