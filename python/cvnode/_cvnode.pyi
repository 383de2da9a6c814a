# Type stubs of the compiled part of cvnode (python/src/*.cpp). docs/python.md describes it.
import os
from typing import Any, Callable, Dict, Iterable, List, Optional, Sequence, Tuple, Union

import numpy as np
import numpy.typing as npt

ArrayLike = npt.ArrayLike
Path = Union[str, os.PathLike]

__version__: str

class Error(Exception): ...
class DataError(Error, ValueError): ...
class ConfigError(Error, ValueError): ...
class SolverError(Error, RuntimeError):
    flag: int
    flag_name: str
    time_reached: float

class Event:
    def __init__(self, time: float, compartment: int = ..., kind: str = ..., amount: float = ...,
                 duration: float = ...) -> None: ...
    time: float
    compartment: int
    kind: str
    amount: float
    duration: float

class Controls:
    def __init__(self, times: ArrayLike, values: ArrayLike, interpolation: str = ...) -> None: ...
    times: np.ndarray
    values: np.ndarray
    interpolation: str

class Trajectory:
    def __init__(self, t0: float, z0: ArrayLike, times: ArrayLike, values: ArrayLike,
                 mask: Optional[ArrayLike] = ..., t_end: Optional[float] = ...,
                 events: Optional[Sequence[Event]] = ..., controls: Optional[Controls] = ...,
                 covariates: Optional[ArrayLike] = ...) -> None: ...
    events: List[Event]
    controls: Optional[Controls]
    covariates: np.ndarray
    t0: float
    z0: np.ndarray
    times: np.ndarray
    values: np.ndarray
    mask: Optional[np.ndarray]
    t_end: Optional[float]
    observed_entries: int

class Batch:
    def __init__(self, trajectories: Iterable[Trajectory]) -> None: ...
    def __len__(self) -> int: ...
    def __getitem__(self, i: int) -> Trajectory: ...

BatchLike = Union[Batch, Sequence[Trajectory]]

class Loss:
    def __init__(self, kind: str = ..., sigma: Optional[ArrayLike] = ..., weight: Optional[ArrayLike] = ...) -> None: ...
    name: str
    reduction: str
    param_size: int
    def initial_parameters(self) -> np.ndarray: ...

def loss_kinds() -> List[str]: ...

class Problem:
    def __init__(self, series: Union[Batch, Sequence[Trajectory]], loss: Union[str, Loss] = ...,
                 loss_parameters: Optional[ArrayLike] = ...) -> None: ...
    def __len__(self) -> int: ...
    def __getitem__(self, i: int) -> Trajectory: ...
    loss: Loss
    loss_parameters: np.ndarray
    entries: int
    normalization: float

LossLike = Union[str, Loss]

class EventRecord:
    def __init__(self, time: float, compartment: int = ..., amount: float = ..., rate: float = ...,
                 kind: str = ...) -> None: ...
    time: float
    compartment: int
    amount: float
    rate: float
    kind: str
    duration: float

class Series:
    def __init__(self, id: str, times: ArrayLike, values: ArrayLike, mask: Optional[ArrayLike] = ...,
                 t0: Optional[float] = ..., initial_state: Optional[ArrayLike] = ...,
                 covariates: Optional[ArrayLike] = ..., control_times: Optional[ArrayLike] = ...,
                 control_values: Optional[ArrayLike] = ..., events: Optional[Sequence[EventRecord]] = ...) -> None: ...
    id: str
    events: List[EventRecord]
    t0: float
    times: np.ndarray
    values: np.ndarray
    mask: np.ndarray
    initial_state: Optional[np.ndarray]
    covariates: Optional[np.ndarray]
    control_times: Optional[np.ndarray]
    control_values: Optional[np.ndarray]

class Normalization:
    def __init__(self, mean: ArrayLike, std: ArrayLike) -> None: ...
    mean: np.ndarray
    std: np.ndarray

class Split:
    train: List[int]
    validation: List[int]
    test: List[int]

class Dataset:
    def __init__(self, channels: Sequence[str], units: Optional[Sequence[str]] = ...) -> None: ...
    @staticmethod
    def read(path: Path, verify: bool = ...) -> "Dataset": ...
    @staticmethod
    def read_range(path: Path, first: int, count: int) -> "Dataset": ...
    @staticmethod
    def count_series(path: Path) -> int: ...
    @staticmethod
    def from_dataframe(df: Any, channels: Optional[Sequence[str]] = ..., *, id: str = ..., time: str = ...,
                       channel: str = ..., value: str = ..., units: Optional[Sequence[str]] = ...,
                       t0: Optional[float] = ...) -> "Dataset": ...
    def to_dataframe(self, wide: bool = ...) -> Any: ...
    @staticmethod
    def from_arrays(channels: Sequence[str], times: Sequence[ArrayLike], values: Sequence[ArrayLike], *,
                    mask: Optional[Sequence[ArrayLike]] = ..., ids: Optional[Sequence[str]] = ...,
                    t0: Any = ..., initial_state: Optional[Sequence[ArrayLike]] = ...,
                    covariates: Optional[Sequence[ArrayLike]] = ..., units: Optional[Sequence[str]] = ...) -> "Dataset": ...
    def to_arrays(self) -> Dict[str, List[Any]]: ...
    def write(self, path: Path) -> None: ...
    def add(self, *args: Any, **kwargs: Any) -> None: ...
    def __len__(self) -> int: ...
    def __getitem__(self, i: int) -> Series: ...
    ids: List[str]
    channel_names: List[str]
    channel_units: List[str]
    channels: int
    observations: int
    covariate_names: List[str]
    control_names: List[str]
    control_interpolation: str
    compartment_names: List[str]
    provenance: str
    initial_state_size: int
    covariate_count: int
    control_count: int
    normalization: Optional[Normalization]
    normalized: bool
    def missing_fraction(self) -> np.ndarray: ...
    def split(self, train_fraction: float = ..., val_fraction: float = ..., seed: int = ...) -> Split: ...
    def subset(self, indices: Sequence[int]) -> "Dataset": ...
    def compute_normalization(self, indices: Optional[Sequence[int]] = ...) -> Normalization: ...
    def normalize(self, normalization: Normalization) -> None: ...
    def denormalize(self) -> None: ...
    def trajectories(self, state_size: Optional[int] = ..., indices: Optional[Sequence[int]] = ...,
                     compartment_state: Optional[Sequence[int]] = ..., dose_scale: Optional[ArrayLike] = ...) -> Batch: ...

def generator_systems() -> List[str]: ...
def generate(system: str = ..., series: int = ..., observations: int = ..., grid: int = ..., irregular: bool = ...,
             t_end: float = ..., t_start: float = ..., noise: float = ..., relative_noise: bool = ...,
             missing: float = ..., seed: int = ...) -> Dataset: ...

class Dynamics:
    state_size: int
    param_size: int
    smooth: bool
    def rhs(self, t: float, z: ArrayLike, theta: ArrayLike) -> np.ndarray: ...
    def vjp(self, t: float, z: ArrayLike, theta: ArrayLike, a: ArrayLike) -> Tuple[np.ndarray, np.ndarray]: ...
    def jacobian(self, t: float, z: ArrayLike, theta: ArrayLike) -> np.ndarray: ...
    def jvp(self, t: float, z: ArrayLike, theta: ArrayLike, v: ArrayLike) -> np.ndarray: ...

class Mlp(Dynamics):
    def __init__(self, layers: Sequence[int], activation: str = ..., time_input: bool = ...,
                 k_diag: Optional[ArrayLike] = ...) -> None: ...
    def initial_parameters(self, init: str = ..., seed: int = ...) -> np.ndarray: ...
    layers: List[int]
    activation: str
    time_input: bool
    k_diag: np.ndarray
    def weight_offset(self, layer: int) -> int: ...
    def bias_offset(self, layer: int) -> int: ...

class CubicSpiral(Dynamics):
    @staticmethod
    def default_parameters() -> np.ndarray: ...
class LotkaVolterra(Dynamics):
    @staticmethod
    def default_parameters() -> np.ndarray: ...
class DampedOscillator(Dynamics):
    @staticmethod
    def default_parameters() -> np.ndarray: ...
class Robertson(Dynamics):
    @staticmethod
    def default_parameters() -> np.ndarray: ...
class LinearDecay(Dynamics):
    def __init__(self, n_or_rates: Union[int, ArrayLike]) -> None: ...

class Hybrid(Dynamics):
    def __init__(self, physics: Optional[Dynamics] = ..., network: Optional[Dynamics] = ...,
                 inputs: Optional[Sequence[int]] = ..., outputs: Optional[Sequence[int]] = ...,
                 output_mask: Optional[ArrayLike] = ..., input_scale: Optional[ArrayLike] = ...,
                 output_matrix: Optional[ArrayLike] = ...) -> None: ...
    physics_param_size: int
    network_param_size: int

class HybridModel:
    dynamics: Hybrid
    initial: np.ndarray
    physics_size: int
    def physical(self, params: ArrayLike) -> np.ndarray: ...

def hybrid_model(*, kind: str = ..., species: Optional[Sequence[str]] = ..., reactions: Optional[Sequence[str]] = ...,
                 size: int = ..., fixed_rates: Optional[ArrayLike] = ..., transform: str = ..., lower: float = ...,
                 upper: float = ..., initial: Optional[ArrayLike] = ..., network: Optional[Sequence[int]] = ...,
                 activation: str = ..., time_input: bool = ..., inputs: Optional[Sequence[int]] = ...,
                 outputs: Optional[Sequence[int]] = ..., output_mask: Optional[ArrayLike] = ...,
                 input_scale: Optional[ArrayLike] = ..., output_matrix: Optional[ArrayLike] = ...,
                 init: str = ..., seed: int = ...) -> HybridModel: ...

class PythonDynamics(Dynamics):
    def __init__(self, state_size: int, param_size: int, f: Callable[[float, np.ndarray, np.ndarray], ArrayLike],
                 vjp: Optional[Callable[[float, np.ndarray, np.ndarray, np.ndarray], Tuple[ArrayLike, ArrayLike]]] = ...,
                 jacobian: Optional[Callable[[float, np.ndarray, np.ndarray], ArrayLike]] = ...,
                 jvp: Optional[Callable[[float, np.ndarray, np.ndarray, np.ndarray], ArrayLike]] = ...,
                 smooth: bool = ...) -> None: ...
    has_vjp: bool

class SolverStats:
    steps: int
    rhs_evals: int
    quad_evals: int
    jac_evals: int
    lin_setups: int
    lin_iters: int
    jtimes_evals: int
    nonlin_iters: int
    err_test_fails: int
    nonlin_conv_fails: int
    checkpoints: int
    restarts: int
    def brief(self) -> str: ...
    def report(self) -> str: ...
    def as_dict(self) -> Dict[str, int]: ...

class Solution:
    times: np.ndarray
    states: np.ndarray
    stats: SolverStats
    nfe: int

class Gradient:
    loss: float
    theta: np.ndarray
    z0: np.ndarray
    phi: np.ndarray
    states: np.ndarray
    forward: SolverStats
    backward: SolverStats
    nfe_forward: int
    nfe_backward: int

class BatchGradient:
    loss: float
    theta: np.ndarray
    z0: np.ndarray
    phi: np.ndarray
    states: List[np.ndarray]
    series_loss: np.ndarray
    forward: SolverStats
    backward: SolverStats
    nfe_forward: int
    nfe_backward: int
    failures: List[Dict[str, Any]]

class Solver:
    def __init__(self, dynamics: Dynamics, **options: Any) -> None: ...
    dynamics: Dynamics
    def solve(self, theta: ArrayLike, t0: float, z0: ArrayLike, times: ArrayLike) -> Solution: ...
    def gradient(self, theta: ArrayLike, series: Union[Trajectory, Problem], loss: Optional[LossLike] = ...,
                 index: int = ...) -> Gradient: ...

class BatchSolver:
    def __init__(self, dynamics: Dynamics, threads: int = ..., mode: str = ..., stack_size: int = ...,
                 skip_failures: bool = ..., **options: Any) -> None: ...
    dynamics: Dynamics
    threads: int
    def gradient(self, theta: ArrayLike, problem: Union[Problem, BatchLike], loss: Optional[LossLike] = ...) -> BatchGradient: ...
    def solve(self, theta: ArrayLike, batch: BatchLike) -> List[Solution]: ...

class TrainedModel:
    path: str
    config_toml: str
    model_spec: str
    epoch: int
    step: int
    parameters: np.ndarray
    theta: np.ndarray
    readout: Optional[np.ndarray]
    loss_parameters: np.ndarray
    normalization: Optional[Normalization]
    observed: int
    state_size: int
    description: str
    history: Dict[str, np.ndarray]
    dynamics: Dynamics
    def predict(self, data: Any, times: Any = ..., threads: int = ...) -> List[np.ndarray]: ...
    def evaluate(self, data: Any = ..., threads: int = ...) -> Any: ...

class BenchProblem:
    @staticmethod
    def read(path: Path) -> "BenchProblem": ...
    name: str
    about: str
    loss: Loss
    ref_loss: float
    layers: List[int]
    k_diag: np.ndarray
    theta: np.ndarray
    ref_grad: np.ndarray
    trajectories: Batch
    def dynamics(self) -> Mlp: ...
    def problem(self) -> Problem: ...
