"""Run a script with every file open under PODIUM_FORBIDDEN's folders refused (an audit hook sees each open).

    PODIUM_FORBIDDEN=a:b PODIUM_ALLOWED=c python rehearsal_guard.py script.py ARGS

Where both hold a file, the deeper folder decides: the installed packages (PODIUM_ALLOWED) stay
readable inside a forbidden checkout, and one package inside them can still be forbidden. tests/test_predict.py runs a bundle's predict.py under it, to prove the bundle reads
nothing but itself, its inputs and the installed packages.
"""

import os
import runpy
import sys

forbidden = [p for p in os.environ["PODIUM_FORBIDDEN"].split(os.pathsep) if p]
allowed = [p for p in os.environ.get("PODIUM_ALLOWED", "").split(os.pathsep) if p]


def _deepest(path: str, folders: list[str]) -> int:
    """The length of the deepest of `folders` that holds `path` (0: none)."""
    return max((len(f) for f in folders if path == f or path.startswith(f + os.sep)), default=0)


def refuse_forbidden(event: str, args: tuple) -> None:
    if event != "open" or not args or not isinstance(args[0], (str, bytes, os.PathLike)):
        return
    path = os.path.abspath(os.fsdecode(args[0]))
    if _deepest(path, forbidden) > _deepest(path, allowed):  # the deeper rule wins: a package inside the venv
        raise PermissionError(f"rehearsal: {path} lies outside the bundle and its inputs")


sys.addaudithook(refuse_forbidden)
script = sys.argv[1]
sys.argv = sys.argv[1:]
sys.path[0] = os.path.dirname(os.path.abspath(script))  # as `python script.py` would set it
runpy.run_path(script, run_name="__main__")
