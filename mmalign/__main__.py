"""``python -m mmalign ...``: the same as the ``mmalign`` command."""

from .cli import main

raise SystemExit(main())
