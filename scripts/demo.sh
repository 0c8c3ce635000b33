#!/usr/bin/env bash
# Fresh machine -> installed trainpilot -> the demo (synthetic defect images, about 3 minutes on 2 CPU cores).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/trainpilot demo "$@"
