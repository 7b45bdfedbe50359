"""``python -m server.cli``: the ``eventlog`` command."""

import sys

from server.cli.main import main

sys.exit(main())
