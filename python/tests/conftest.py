"""Shared fixtures of the cvnode pytest suite (run by CTest as python_pytest, a few seconds).

CTest sets PYTHONPATH to the build's python/ folder and names the `cvnode` program, the source
tree and ../shared in CVNODE_CLI, CVNODE_SOURCE_DIR and CVNODE_SHARED_DIR.
"""
import os
import pathlib

import numpy as np
import pytest

import cvnode

HERE = pathlib.Path(__file__).resolve().parent


def _env_path(name, default):
    return pathlib.Path(os.environ.get(name, default))


SOURCE_DIR = _env_path("CVNODE_SOURCE_DIR", HERE.parent.parent)
SHARED_DIR = _env_path("CVNODE_SHARED_DIR", SOURCE_DIR.parent / "shared")


@pytest.fixture
def cli():
    path = os.environ.get("CVNODE_CLI")
    if not path or not os.path.exists(path):
        pytest.skip("CVNODE_CLI (the cvnode program) is not set: run through ctest")
    return path


@pytest.fixture
def bench_dir():
    d = SHARED_DIR / "bench"
    if not (d / "B1.h5").exists():
        pytest.skip(f"no benchmark problems in {d}")
    return d


@pytest.fixture(scope="session")
def lv_data():
    """A small Lotka-Volterra dataset: 12 series of 10 irregular observations, 10% missing."""
    return cvnode.generate("lotka_volterra", series=12, observations=10, missing=0.1, seed=3)


def spiral_trajectory(t0=0.0):
    times = np.array([0.3, 0.7, 1.0, 1.6])
    values = np.array([[1.0, 0.2], [0.5, 0.8], [-0.1, 0.9], [-0.6, 0.3]])
    mask = np.ones_like(values, dtype=bool)
    mask[2, 1] = False
    values[2, 1] = np.nan
    return cvnode.Trajectory(t0, [1.2, -0.3], times, values, mask=mask)
