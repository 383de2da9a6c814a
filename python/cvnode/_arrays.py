"""Datasets from and to lists of NumPy arrays (one entry per series: ragged lengths welcome)."""
from typing import Dict, List, Optional, Sequence

import numpy as np

from . import _cvnode


def from_arrays(channels: Sequence[str], times: Sequence, values: Sequence, *, mask: Optional[Sequence] = None,
                ids: Optional[Sequence[str]] = None, t0=None, initial_state: Optional[Sequence] = None,
                covariates: Optional[Sequence] = None, units: Optional[Sequence[str]] = None) -> "_cvnode.Dataset":
    """A Dataset from per-series lists: times[i] (T_i,), values[i] (T_i, channels) and optionally
    mask[i], t0 (one number for all or one per series), initial_state[i], covariates[i]; ids
    default to "0", "1", ... Each series is checked as Dataset.add checks it (DataError naming
    the series and the field)."""
    n = len(times)
    if len(values) != n:
        raise _cvnode.DataError(f"from_arrays: {n} time arrays but {len(values)} value arrays")

    def per_series(name, x):
        if x is None:
            return [None] * n
        if len(x) != n:
            raise _cvnode.DataError(f"from_arrays: {name} has {len(x)} entries for {n} series")
        return list(x)

    t0s = [t0] * n if t0 is None or np.ndim(t0) == 0 else per_series("t0", t0)
    ds = _cvnode.Dataset(list(channels), units)
    for i, (sid, t, v, m, s0, z0, cov) in enumerate(zip(
            per_series("ids", ids) if ids is not None else [str(i) for i in range(n)], times, values,
            per_series("mask", mask), t0s, per_series("initial_state", initial_state),
            per_series("covariates", covariates))):
        ds.add(str(sid), t, v, mask=m, t0=s0, initial_state=z0, covariates=cov)
    return ds


def to_arrays(self) -> Dict[str, List]:
    """The series as lists of arrays: ids, t0, times, values (NaN where missing), mask."""
    out: Dict[str, List] = {"ids": [], "t0": [], "times": [], "values": [], "mask": []}
    for s in self:
        out["ids"].append(s.id)
        out["t0"].append(s.t0)
        out["times"].append(s.times)
        out["values"].append(np.where(s.mask, s.values, np.nan))
        out["mask"].append(s.mask)
    return out


_cvnode.Dataset.from_arrays = staticmethod(from_arrays)
_cvnode.Dataset.to_arrays = to_arrays
