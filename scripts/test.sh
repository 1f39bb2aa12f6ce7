#!/usr/bin/env bash
# The whole test suite, as CI runs it: trial over tests/, then ruff, mypy and the import
# contracts (pyproject.toml [tool.importlinter]).
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -b -m twisted.trial --random=0 --jobs=2 tests
ruff check hls_proxy tests twisted benchmarks
ruff format --check hls_proxy tests twisted benchmarks
mypy hls_proxy
lint-imports
