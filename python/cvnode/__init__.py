"""cvnode from Python: neural ordinary differential equations on SUNDIALS CVODES.

Datasets from NumPy arrays or pandas, the MLP, physics and hybrid models, Solver and BatchSolver
gradients (adjoint or Dormand-Prince backpropagation) as NumPy arrays, training with `fit`,
checkpoints, predictions and evaluations, and Python-written dynamics for prototyping.
Tutorial and reference: docs/python.md.
"""
import glob as _glob
import os as _os
import sys as _sys


def _import_numpy():
    # An interpreter without numpy (pyenv's on some machines, which cannot reach PyPI) gets the
    # numpy of the interpreter the module was built for: the build links it, alone, into a folder
    # beside the package (python/CMakeLists.txt). Appended last, so an own numpy always wins.
    try:
        import numpy  # noqa: F401
        return
    except ImportError:
        pass
    deps = _os.path.join(_os.path.dirname(_os.path.dirname(_os.path.abspath(__file__))), "_cvnode_deps")
    if _os.path.isdir(deps) and deps not in _sys.path:
        _sys.path.append(deps)
    try:
        import numpy  # noqa: F401
    except ImportError as e:
        raise ImportError(f"cvnode needs numpy, which {_sys.executable} cannot import "
                          "(Debian: apt-get install python3-numpy, then use /usr/bin/python3)") from e


_import_numpy()

try:
    from . import _cvnode
except ImportError as _e:
    _built = [_os.path.basename(p) for p in _glob.glob(_os.path.join(_os.path.dirname(__file__), "_cvnode.*"))]
    raise ImportError(
        f"cvnode's compiled module {_built or '(missing)'} does not load in {_sys.executable} "
        f"(Python {_sys.version.split()[0]}): it was built for another Python version; use the "
        "interpreter it was built for (docs/python.md) or rebuild with -DPython3_EXECUTABLE=...") from _e

from ._cvnode import (  # noqa: E402
    __version__,
    # errors
    Error, DataError, ConfigError, SolverError,
    # data
    Series, Dataset, Normalization, Split, generate, generator_systems,
    # what a gradient is taken of
    Trajectory, Batch, Loss, Problem, loss_kinds, Event, Controls,
    # models
    Dynamics, Mlp, CubicSpiral, LotkaVolterra, DampedOscillator, Robertson, LinearDecay, Hybrid,
    HybridModel, hybrid_model, PythonDynamics,
    # solving
    Solver, BatchSolver, Solution, Gradient, BatchGradient, SolverStats,
    # training
    TrainedModel,
    # benchmark problems of ../shared/bench
    BenchProblem,
)
from ._train import fit, FitResult, load_checkpoint, evaluate, Evaluation  # noqa: E402
from . import _arrays, _frames  # noqa: E402,F401  (Dataset.from_arrays, from_dataframe ...)

#: ConfigError under the library's C++ name (cvnode::OptionsError).
OptionsError = ConfigError

from ._cvnode import EventRecord  # noqa: E402  (dosing records of a Dataset's series)

__all__ = [
    "__version__", "Error", "DataError", "ConfigError", "OptionsError", "SolverError",
    "Series", "Dataset", "Normalization", "Split", "generate", "generator_systems",
    "Trajectory", "Batch", "Loss", "Problem", "loss_kinds", "Event", "Controls",
    "Dynamics", "Mlp", "CubicSpiral", "LotkaVolterra", "DampedOscillator", "Robertson", "LinearDecay", "Hybrid",
    "HybridModel", "hybrid_model", "PythonDynamics",
    "Solver", "BatchSolver", "Solution", "Gradient", "BatchGradient", "SolverStats",
    "TrainedModel", "BenchProblem", "fit", "FitResult", "load_checkpoint", "evaluate", "Evaluation",
]
__all__ += ["EventRecord"]
