"""Makes the interpreter that runs this script find the cvnode package built in ROOT.

    python3 python/register.py BUILD/python

Writes cvnode.pth (ROOT, and an import of the numpy fallback) into the interpreter's site directory: its own site-packages
inside a virtual environment, else the user site directory (~/.local/lib/pythonX.Y/site-packages,
read by every CPython X.Y of this user, Debian's and pyenv's alike). An interpreter whose
extension ABI differs from the built module's is left alone, with a note. Run by the build after
every build (python/CMakeLists.txt); delete the .pth to undo. Standard library only.
"""
import glob
import importlib.machinery
import os
import site
import sys
import sysconfig
import tempfile


def main(argv):
    if len(argv) != 2:
        print("usage: register.py BUILD_PYTHON_ROOT", file=sys.stderr)
        return 2
    root = os.path.abspath(argv[1])
    built = glob.glob(os.path.join(root, "cvnode", "_cvnode.*"))
    who = f"{sys.executable} (Python {sys.version.split()[0]})"
    if not built:
        print(f"cvnode: register: no built module in {root}/cvnode", file=sys.stderr)
        return 1
    if not any(b.endswith(s) for b in built for s in importlib.machinery.EXTENSION_SUFFIXES):
        print(f"cvnode: {who} cannot load {os.path.basename(built[0])} (another Python version); "
              "not registered there")
        return 0
    if sys.prefix != sys.base_prefix:  # a virtual environment: its own site-packages
        target = sysconfig.get_paths()["purelib"]
    elif site.ENABLE_USER_SITE:
        target = site.getusersitepackages()
    else:
        print(f"cvnode: {who} has no user site directory; not registered there "
              f"(PYTHONPATH={root} works)")
        return 0
    path = os.path.join(target, "cvnode.pth")
    # The second line lets an interpreter without numpy use the build interpreter's, and only
    # such an interpreter (_cvnode_numpy_fallback.py). It is imported only if it is found, so a
    # build folder deleted later leaves every python3 start quiet instead of printing a traceback.
    line = (root + "\nimport importlib.util; importlib.util.find_spec('_cvnode_numpy_fallback')"
            " and __import__('_cvnode_numpy_fallback')\n")
    try:
        with open(path) as f:
            if f.read() == line:
                return 0
    except OSError:
        pass
    try:
        os.makedirs(target, exist_ok=True)
        # Atomic: builds of several trees may register at once; the last one wins, whole.
        fd, tmp = tempfile.mkstemp(dir=target, prefix=".cvnode.pth.")
        with os.fdopen(fd, "w") as f:
            f.write(line)
        os.replace(tmp, path)
    except OSError as e:  # a read-only home must not fail the build
        print(f"cvnode: cannot register in {target} ({e}); PYTHONPATH={root} works")
        return 0
    print(f"cvnode: {who} imports cvnode from {root} ({path})")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
