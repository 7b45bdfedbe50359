"""File sources: files on disk watched into streams (``[[sources]]``, ``/api/sources``).

See ``docs/producers.md``. Kinds: ``ndjson-tail``, ``json-file``, ``directory``,
and any registered under the ``eventlog.sources`` entry point group.
"""

from server.sources.manager import SourceManager
from server.sources.spec import SourceSpec, parse_spec

__all__ = ["SourceManager", "SourceSpec", "parse_spec"]
