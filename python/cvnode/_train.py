"""Training from Python: fit(), load_checkpoint(), evaluate() and their results.

fit() runs the library's `cvnode fit` pipeline itself (src/app/fit.cpp): the same
configuration keys, checkpoints, metrics.csv and, for the same configuration, the same
parameters bit for bit.
"""
import dataclasses
import os
from typing import Callable, Dict, List, Mapping, Optional, Sequence, Union

import numpy as np

from . import _cvnode

PathLike = Union[str, "os.PathLike[str]"]


def _overrides(overrides) -> List[str]:
    """{"solver.rtol": 1e-7} or ["solver.rtol=1e-7"] as the library's override strings."""
    if overrides is None:
        return []
    if isinstance(overrides, Mapping):
        return [f"{k}={_cvnode._toml_value(v, str(k))}" for k, v in overrides.items()]
    if isinstance(overrides, str):
        return [overrides]
    return [str(o) for o in overrides]


@dataclasses.dataclass
class FitResult:
    """What fit() returns. Parameters are the full vector [dynamics | readout | learned z0]."""
    out: str
    best_checkpoint: str
    latest_checkpoint: str
    metrics_csv: str
    config: str                 # the resolved configuration (TOML), as stored in the checkpoints
    epochs: int
    steps: int
    best_epoch: int
    best_val_loss: float
    stopped_early: bool
    failures: int
    rollbacks: int
    params: np.ndarray          # after the last epoch
    best_params: np.ndarray     # at the best validation loss (what best.h5 holds)
    physical: Optional[np.ndarray]  # hybrid models: the physical parameters of the best ones
    history: Dict[str, np.ndarray]  # metrics.csv's columns: epoch, lr, train_loss, val_loss, ...
    seconds: float

    def load_best(self) -> "_cvnode.TrainedModel":
        return load_checkpoint(self.best_checkpoint)


def fit(config: Union[PathLike, Mapping], out: PathLike, *, overrides=None, resume: Optional[PathLike] = None,
        callback: Optional[Callable[[Dict[str, float]], None]] = None,
        log: Optional[Callable[[str], None]] = None, stop_after_epoch: int = 0) -> FitResult:
    """Trains a model as `cvnode fit --config CONFIG --out OUT` does.

    config: a TOML file (docs/config.md) or a dict of sections, e.g.
        {"data": {"file": "data/lotka_volterra.h5"}, "run": {"epochs": 20}}
        (a relative data.file is relative to the working directory; in a file, to the file);
        None with resume= continues the checkpoint's own configuration.
    overrides: {"solver.rtol": 1e-7} or ["solver.rtol=1e-7"], applied in order after config.
    callback(metrics): after every epoch, once its checkpoints are written; metrics is a dict
        with epoch, lr, train_loss, val_loss, val_rmse, nfe_forward, nfe_backward, grad_norm,
        failures, seconds. An exception raised in it (or Ctrl-C) ends the fit; the checkpoints
        so far stay and resume= continues from them.
    log: called with each progress line (default: silent).
    The GIL is released while training (callback and log take it back).
    """
    if config is not None and not isinstance(config, Mapping):
        config = os.fspath(config)
    d = _cvnode._fit(config, os.fspath(out), _overrides(overrides),
                     None if resume is None else os.fspath(resume), int(stop_after_epoch), callback, log)
    return FitResult(**d)


def load_checkpoint(path: PathLike, overrides=None) -> "_cvnode.TrainedModel":
    """A trained model from a checkpoint (best.h5 or latest.h5 of a fit). overrides as for fit():
    e.g. {"solver.rtol": 1e-8} to predict at another tolerance (the model keys must not change)."""
    return _cvnode._load_checkpoint(os.fspath(path), _overrides(overrides))


@dataclasses.dataclass
class Evaluation:
    """Errors of a trained model on a set of series. rmse and mae per channel in data units."""
    loss: float                # the training loss (model units)
    rmse: np.ndarray
    mae: np.ndarray
    rmse_model_units: np.ndarray
    mae_model_units: np.ndarray
    rmse_all_model_units: float
    nfe: int                   # right-hand-side calls of all solves
    series: int
    failed: List[dict]         # {series (id), flag, flag_name, time, message} per failed solve


def _dataset_arg(data):
    if isinstance(data, _cvnode.Dataset):
        return data
    if isinstance(data, _cvnode.Series):
        data = [data]
    if isinstance(data, Sequence) and all(isinstance(s, _cvnode.Series) for s in data) and data:
        return None
    raise _cvnode.DataError(f"expected a cvnode.Dataset, Series or list of Series, got {type(data).__name__}")


def _as_dataset(model, data) -> "_cvnode.Dataset":
    ds = _dataset_arg(data)
    if ds is not None:
        return ds
    series = [data] if isinstance(data, _cvnode.Series) else list(data)
    ds = _cvnode.Dataset([f"y{i}" for i in range(model.observed)])
    for s in series:
        ds.add(s)
    return ds


def _predict(self, data, times=None, threads: int = 1) -> List[np.ndarray]:
    """Trajectories of the model (data units, times x channels), one array per series.

    data: a Dataset, Series or list of Series in data units (normalised here with the model's
        statistics); each series starts from its stored initial state, else its first
        observation. times: None (each series' own times), one array for all series, or a list
        of arrays, one per series (any times >= the series' t0, e.g. a fine grid to plot).
    Raises SolverError if a solve fails.
    """
    return self._predict(_as_dataset(self, data), times, int(threads))


def _evaluate(self, data="test", threads: int = 0) -> Evaluation:
    """Loss and per-channel errors on a split of the model's own dataset ("train", "val",
    "test", "all") or on given series (Dataset, Series or list, in data units)."""
    if not isinstance(data, str):
        data = _as_dataset(self, data)
    return Evaluation(**self._evaluate(data, int(threads)))


_cvnode.TrainedModel.predict = _predict
_cvnode.TrainedModel.evaluate = _evaluate


def evaluate(model, data="test", *, threads: int = 0, overrides=None) -> Evaluation:
    """evaluate(checkpoint_path_or_TrainedModel, data="test"): see TrainedModel.evaluate."""
    if not isinstance(model, _cvnode.TrainedModel):
        model = load_checkpoint(model, overrides)
    return model.evaluate(data, threads)
