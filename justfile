# eventlog developer recipes: thin wrappers, nothing hidden.
# Install the tools first: python3 -m venv .venv && .venv/bin/pip install -e '.[dev]'

set shell := ["bash", "-euo", "pipefail", "-c"]

venv := ".venv/bin"

# list the recipes
default:
    @just --list

# [run] start the server on the embedded default (./eventlog.db, 127.0.0.1:7432)
serve *ARGS:
    {{venv}}/eventlog serve {{ARGS}}

# [test] the whole suite
test *ARGS:
    {{venv}}/pytest {{ARGS}}

# [test] the suite without the slow crash and flood tests
test-fast *ARGS:
    {{venv}}/pytest -m "not slow" {{ARGS}}

# [lint] ruff, ruff format and mypy --strict on the packages
lint:
    {{venv}}/ruff check eventlog consumers server tests bench
    {{venv}}/ruff format --check eventlog consumers server tests bench
    {{venv}}/mypy --strict eventlog consumers server

# [lint] apply ruff's fixes and formatting
fmt:
    {{venv}}/ruff check --fix eventlog consumers server tests bench
    {{venv}}/ruff format eventlog consumers server tests bench

# [bench] every benchmark scenario; writes docs/benchmarks.md
bench *ARGS:
    {{venv}}/python -m bench {{ARGS}}
