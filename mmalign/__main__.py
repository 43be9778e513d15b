"""`python -m mmalign ...`: the same as the `mmalign` command.

Run from the folder above a clone named `mmalign`, the current folder comes first on `sys.path` and
Python takes the clone's top folder (which has no `__init__.py`) for a namespace package `mmalign`
that shadows the installed one (an editable install finds this module all the same). The folders
that do that are taken off `sys.path` and the real package imported before the command runs.
"""

import os
import sys


def _unshadow() -> None:
    package = sys.modules.get("mmalign")
    if package is None or getattr(package, "__file__", None) is not None:
        return
    sys.path[:] = [p for p in sys.path
                   if not (os.path.isdir(os.path.join(p or ".", "mmalign"))
                           and not os.path.isfile(os.path.join(p or ".", "mmalign", "__init__.py")))]
    for name in [m for m in sys.modules if m == "mmalign" or m.startswith("mmalign.")]:
        if name != __name__:
            del sys.modules[name]
    import mmalign

    if getattr(mmalign, "__file__", None) is None:
        sys.exit(f"mmalign: error: the folder {os.getcwd()}/mmalign shadows the mmalign package; run the "
                 "'mmalign' command, or 'python -m mmalign' from another folder")


_unshadow()

from mmalign.cli import main  # noqa: E402 - after the shadowing folder is out of the way

raise SystemExit(main())
