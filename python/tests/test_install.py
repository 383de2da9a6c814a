"""The build makes `python3 -c "import cvnode"` work: register.py's .pth, tried in a temporary
user site directory with the build interpreter and with whatever `python3` is first in PATH
(pyenv's on some machines: another CPython 3.11 without numpy)."""
import os
import pathlib
import shutil
import subprocess
import sys

import pytest

import cvnode

REGISTER = pathlib.Path(__file__).resolve().parent.parent / "register.py"


def interpreters():
    found = {sys.executable}
    on_path = shutil.which("python3")
    if on_path:
        found.add(on_path)
    return sorted(found)


@pytest.mark.parametrize("python", interpreters())
def test_registered_module_imports_in_a_clean_environment(python, tmp_path):
    root = os.environ.get("CVNODE_PYTHON_ROOT")
    if not root:
        pytest.skip("CVNODE_PYTHON_ROOT (the build's python folder) is not set: run through ctest")
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}
    env["PYTHONUSERBASE"] = str(tmp_path / "userbase")
    probe = subprocess.run([python, "-c", "import sys; print(sys.prefix != sys.base_prefix)"], env=env,
                           capture_output=True, text=True, check=True)
    if probe.stdout.strip() == "True":
        pytest.skip(f"{python} is a virtual environment: registering would change it")
    reg = subprocess.run([python, str(REGISTER), root], env=env, capture_output=True, text=True, check=True)
    if "another Python version" in reg.stdout:
        pytest.skip(reg.stdout.strip())
    assert (tmp_path / "userbase").exists(), reg.stdout
    # numpy first, as a user would: an interpreter without numpy gets the build interpreter's.
    out = subprocess.run([python, "-c", "import numpy, cvnode; print(cvnode.__version__); print(cvnode.__file__); "
                                        "print(cvnode.Mlp([2, 3, 2]).param_size)"],
                         env=env, cwd=tmp_path, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    version, path, params = out.stdout.split()
    assert version == cvnode.__version__
    assert pathlib.Path(path).resolve().is_relative_to(pathlib.Path(root).resolve())
    assert params == "17"
