"""Datasets from and to pandas DataFrames (pandas is optional: imported only when used).

Long format, one row per measured value:   id | time | channel | value
Wide format, one row per observation time: id | time | <one column per channel>
A missing row, or NaN in value, is a missing (masked) measurement.
"""
from typing import Optional, Sequence

import numpy as np

from . import _cvnode


def _pandas():
    try:
        import pandas
    except ImportError as e:  # pragma: no cover - pandas is installed by scripts/setup.sh
        raise ImportError("DataFrame support needs pandas (Debian: apt-get install python3-pandas)") from e
    return pandas


def from_dataframe(df, channels: Optional[Sequence[str]] = None, *, id: str = "id", time: str = "time",
                   channel: str = "channel", value: str = "value", units: Optional[Sequence[str]] = None,
                   t0: Optional[float] = None) -> "_cvnode.Dataset":
    """A Dataset from a long (id, time, channel, value) or wide (id, time, one column per
    channel: give `channels`) DataFrame. Series keep the order in which their ids first appear,
    times are sorted; t0 defaults to each series' first time. Raises DataError naming the column
    and the row for anything unusable (missing column, non-numeric or non-finite time, duplicate
    measurement, unknown channel)."""
    pd = _pandas()
    if not isinstance(df, pd.DataFrame):
        raise _cvnode.DataError(f"from_dataframe: expected a pandas DataFrame, got {type(df).__name__}")
    wide = channel not in df.columns and channels is not None
    needed = [id, time] + (list(channels) if wide else [channel, value])
    for c in needed:
        if c not in df.columns:
            raise _cvnode.DataError(f"from_dataframe: no column '{c}' (columns: {', '.join(map(str, df.columns))})")
    if wide:
        long = df.melt(id_vars=[id, time], value_vars=list(channels), var_name="__channel", value_name="__value")
        channel, value = "__channel", "__value"
    else:
        long = df
    t = pd.to_numeric(long[time], errors="coerce")
    bad = ~np.isfinite(t.to_numpy(dtype=float))
    if bad.any():
        row = long.index[bad][0]
        raise _cvnode.DataError(f"from_dataframe: column '{time}', row {row}: time {long.loc[row, time]!r} is not a finite number")
    v = pd.to_numeric(long[value], errors="coerce")
    nonnum = v.isna() & long[value].notna()
    if nonnum.any():
        row = long.index[nonnum.to_numpy()][0]
        raise _cvnode.DataError(f"from_dataframe: column '{value}', row {row}: {long.loc[row, value]!r} is not a number")
    names = [str(c) for c in (channels if channels is not None else pd.unique(long[channel]))]
    index = {c: i for i, c in enumerate(names)}
    ch = long[channel].astype(str)
    unknown = ~ch.isin(names)
    if unknown.any():
        row = long.index[unknown.to_numpy()][0]
        raise _cvnode.DataError(f"from_dataframe: column '{channel}', row {row}: unknown channel {ch.loc[row]!r} "
                                f"(channels: {', '.join(names)})")
    frame = pd.DataFrame({"id": long[id].astype(str), "t": t.astype(float), "c": ch.map(index), "v": v.astype(float)})
    frame = frame[np.isfinite(frame["v"].to_numpy())]  # NaN: not measured
    dup = frame.duplicated(["id", "t", "c"])
    if dup.any():
        row = frame.index[dup.to_numpy()][0]
        raise _cvnode.DataError(f"from_dataframe: row {row}: a second value for series '{frame.loc[row, 'id']}', "
                                f"time {frame.loc[row, 't']}, channel '{names[frame.loc[row, 'c']]}'")
    ds = _cvnode.Dataset(names, units)
    order = pd.unique(long[id].astype(str))
    groups = dict(tuple(frame.groupby("id", sort=False)))
    for sid in order:
        g = groups.get(sid)
        if g is None:
            raise _cvnode.DataError(f"from_dataframe: series '{sid}' has no measured value")
        times = np.unique(g["t"].to_numpy())
        values = np.full((len(times), len(names)), np.nan)
        rows = np.searchsorted(times, g["t"].to_numpy())
        values[rows, g["c"].to_numpy()] = g["v"].to_numpy()
        mask = np.isfinite(values)
        ds.add(sid, times, values, mask=None if mask.all() else mask, t0=t0)
    return ds


def to_dataframe(self, wide: bool = False):
    """The observed values as a long DataFrame (id, time, channel, value), or with wide=True one
    row per observation time and one column per channel (NaN where missing)."""
    pd = _pandas()
    parts = []
    names = self.channel_names
    for i in range(len(self)):
        s = self[i]
        if wide:
            d = pd.DataFrame(np.where(s.mask, s.values, np.nan), columns=names)
            d.insert(0, "time", s.times)
            d.insert(0, "id", s.id)
        else:
            k, c = np.nonzero(s.mask)
            d = pd.DataFrame({"id": s.id, "time": s.times[k], "channel": [names[j] for j in c],
                              "value": s.values[k, c]})
        parts.append(d)
    if not parts:
        return pd.DataFrame(columns=["id", "time"] + (list(names) if wide else ["channel", "value"]))
    return pd.concat(parts, ignore_index=True)


_cvnode.Dataset.from_dataframe = staticmethod(from_dataframe)
_cvnode.Dataset.to_dataframe = to_dataframe
