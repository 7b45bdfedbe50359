# eventlog developer recipes: thin wrappers, nothing hidden.
# Install the tools first: python3 -m venv .venv && .venv/bin/pip install -e '.[dev]'

set shell := ["bash", "-euo", "pipefail", "-c"]

venv := ".venv/bin"

# list the recipes
default:
    @just --list

# start the server on the embedded default (./eventlog.db, 127.0.0.1:7432)
[group('run')]
serve *ARGS:
    {{venv}}/eventlog serve {{ARGS}}

# the whole suite (PostgreSQL tests start their own server)
[group('test')]
test *ARGS:
    {{venv}}/pytest {{ARGS}}

# the suite without the slow crash, chaos and flood tests
[group('test')]
test-fast *ARGS:
    {{venv}}/pytest -m "not slow" {{ARGS}}

# ruff, ruff format and mypy --strict on the packages and the tests
[group('lint')]
lint:
    {{venv}}/ruff check .
    {{venv}}/ruff format --check .
    {{venv}}/mypy --strict eventlog consumers server tests

# apply ruff's fixes and formatting
[group('lint')]
fmt:
    {{venv}}/ruff check --fix .
    {{venv}}/ruff format .

# every benchmark scenario (or the ones named); writes docs/benchmarks.md
[group('bench')]
bench *ARGS:
    {{venv}}/python -m bench {{ARGS}}

# check the docs: links resolve, the documented examples run, the OpenAPI document is complete
[group('docs')]
docs:
    {{venv}}/pytest -q tests/test_docs.py tests/test_public_api.py tests/server/api/test_openapi.py
