"""``python -m mmalign.cli ...``: the same as the ``mmalign`` command."""

from . import main

raise SystemExit(main())
