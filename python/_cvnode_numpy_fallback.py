"""numpy for an interpreter that has none, and only then.

Imported by the cvnode.pth that the build writes (python/register.py). It appends to
sys.meta_path a finder that answers for `numpy` alone, from _cvnode_deps/ beside this file (a link
to the numpy of the interpreter cvnode was built for). Being last, it is asked only after every
other finder failed: an interpreter's own numpy always wins. Its use: pyenv's python3 on machines
where PyPI is out of reach, so that `import numpy` then `import cvnode` works there too.
"""
import importlib.machinery
import os
import sys

_DEPS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "_cvnode_deps")


class _NumpyFallback:
    @classmethod
    def find_spec(cls, name, path=None, target=None):
        if name != "numpy" or not os.path.isdir(_DEPS):
            return None
        return importlib.machinery.PathFinder.find_spec(name, [_DEPS])


if not any(getattr(f, "__name__", "") == "_NumpyFallback" for f in sys.meta_path):
    sys.meta_path.append(_NumpyFallback)
