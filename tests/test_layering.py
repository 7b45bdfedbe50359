"""Code outside ``eventlog/storage/`` reads what a backend declares, never what it is.

No ``isinstance``/``getattr``/``hasattr``/``type()`` test of a storage backend,
no ``__module__`` comparison, and no reach through a log into ``log.storage``
or ``log.heads`` from consumers or the server: the backend's
:class:`~eventlog.storage.capabilities.Capabilities` and ``EventLog``'s public
methods say everything they need.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BACKENDS = ("SQLiteStorage", "PostgresStorage", "MemoryStorage", "Storage", "Leases")


def _modules(*packages: str) -> list[Path]:
    return sorted(p for package in packages for p in (ROOT / package).rglob("*.py"))


def _backend_type_tests(path: Path) -> list[str]:
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        where = f"{path.name}:{getattr(node, 'lineno', 0)}"
        if isinstance(node, ast.Attribute) and node.attr == "__module__":
            found.append(f"{where}: __module__")
        elif (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Name)
            and node.func.id in ("isinstance", "getattr", "hasattr", "type")
            and node.args
        ):
            text = ast.unparse(node)
            if "storage" in ast.unparse(node.args[0]).lower() or any(
                name in text for name in BACKENDS
            ):
                found.append(f"{where}: {text}")
    return found


def _reaches_into_the_log(path: Path) -> list[str]:
    return [
        f"{path.name}:{node.lineno}: {ast.unparse(node)}"
        for node in ast.walk(ast.parse(path.read_text(), str(path)))
        if isinstance(node, ast.Attribute)
        and node.attr in ("storage", "heads")
        and ast.unparse(node.value).endswith("log")
    ]


def test_no_code_outside_eventlog_storage_tests_a_backends_type() -> None:
    outside = [
        p
        for p in _modules("eventlog", "consumers", "server")
        if (ROOT / "eventlog" / "storage") not in p.parents
    ]
    assert outside
    assert [hit for p in outside for hit in _backend_type_tests(p)] == []


def test_consumers_and_the_server_use_the_logs_public_methods_only() -> None:
    modules = _modules("consumers", "server")
    assert modules
    assert [hit for p in modules for hit in _reaches_into_the_log(p)] == []


def test_the_checks_catch_what_they_look_for(tmp_path: Path) -> None:
    bad = tmp_path / "bad.py"
    bad.write_text(
        "isinstance(log.storage, SQLiteStorage)\n"
        "getattr(storage, 'append_slots', 1)\n"
        "type(storage).__module__ == 'eventlog.storage.postgres'\n"
        "log.heads.known_head('s')\n"
    )
    assert len(_backend_type_tests(bad)) == 4
    assert len(_reaches_into_the_log(bad)) == 2
