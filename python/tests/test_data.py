"""Datasets from NumPy arrays and DataFrames, through HDF5 and back."""
import numpy as np
import pytest

import cvnode


def make_dataset():
    ds = cvnode.Dataset(["x", "v"], units=["m", "m/s"])
    mask = np.array([[1, 1], [1, 0], [1, 1]], dtype=bool)
    ds.add("a", times=[0.0, 0.5, 1.25], values=[[1, 2], [3, np.nan], [5, 6]], mask=mask,
           initial_state=[1.0, 2.0, 0.0], covariates=[70.0], control_times=[0.0, 1.0],
           control_values=[[1.0], [0.0]])
    ds.add(cvnode.Series("b", [0.1, 0.2], [[7, 8], [9, 10]], t0=0.0, initial_state=[0.5, 0.5, 0.1],
                         covariates=[80.0], control_times=[0.0], control_values=[[2.0]]))
    ds.covariate_names = ["weight"]
    ds.control_names = ["dose"]
    return ds


def test_arrays_roundtrip_through_hdf5(tmp_path):
    ds = make_dataset()
    path = tmp_path / "d.h5"
    ds.write(path)
    back = cvnode.Dataset.read(path)
    assert len(back) == 2 and back.ids == ["a", "b"]
    assert back.channel_names == ["x", "v"] and back.channel_units == ["m", "m/s"]
    assert back.covariate_names == ["weight"] and back.control_names == ["dose"]
    a = back[0]
    np.testing.assert_array_equal(a.times, [0.0, 0.5, 1.25])
    np.testing.assert_array_equal(a.mask, [[True, True], [True, False], [True, True]])
    np.testing.assert_array_equal(a.values[a.mask], [1, 2, 3, 5, 6])
    assert np.isnan(a.values[1, 1])  # masked entries are stored as NaN
    np.testing.assert_array_equal(a.initial_state, [1, 2, 0])
    np.testing.assert_array_equal(a.covariates, [70])
    np.testing.assert_array_equal(a.control_values, [[1], [0]])
    b = back[-1]
    assert b.t0 == 0.0 and a.t0 == 0.0
    np.testing.assert_array_equal(b.values, [[7, 8], [9, 10]])
    assert back.initial_state_size == 3 and back.covariate_count == 1 and back.control_count == 1


def test_ragged_lists_of_arrays_roundtrip(tmp_path):
    times = [np.array([0.0, 0.5, 1.0]), np.array([0.2, 0.4])]
    values = [np.array([[1.0, 2.0], [3.0, np.nan], [5.0, 6.0]]), np.array([[7.0, 8.0], [9.0, 10.0]])]
    mask = [~np.isnan(v) for v in values]
    ds = cvnode.Dataset.from_arrays(["x", "v"], times, values, mask=mask, ids=["a", "b"], t0=0.0)
    ds.write(tmp_path / "r.h5")
    back = cvnode.Dataset.read(tmp_path / "r.h5").to_arrays()
    assert back["ids"] == ["a", "b"] and back["t0"] == [0.0, 0.0]
    for t, v, bt, bv in zip(times, values, back["times"], back["values"]):
        np.testing.assert_array_equal(t, bt)
        np.testing.assert_array_equal(v, bv)  # NaN where missing, both sides
    with pytest.raises(cvnode.DataError, match="2 time arrays but 1 value arrays"):
        cvnode.Dataset.from_arrays(["x", "v"], times, values[:1])
    with pytest.raises(cvnode.DataError, match=r"series '0'.*values\(1, 1\) = nan.*not masked"):
        cvnode.Dataset.from_arrays(["x", "v"], times, values)


def test_trajectories_from_dataset():
    ds = make_dataset()
    batch = ds.trajectories(state_size=3)
    assert len(batch) == 2
    tr = batch[0]
    np.testing.assert_array_equal(tr.z0, [1, 2, 0])  # the stored initial state
    assert tr.values.shape == (3, 2)


def test_split_and_normalization(lv_data):
    split = lv_data.split(0.5, 0.25, seed=1)
    assert sorted(split.train + split.validation + split.test) == list(range(len(lv_data)))
    assert len(split.train) == 6
    n = lv_data.compute_normalization(split.train)
    sub = lv_data.subset(split.train)
    sub.normalize(n)
    vals = np.concatenate([s.values[s.mask] for s in sub])
    assert abs(vals.mean()) < 1.0


@pytest.mark.parametrize("bad, message", [
    (dict(times=[0.0, 0.0], values=[[1, 2], [3, 4]]), "increasing"),
    (dict(times=[0.0, 1.0], values=[[1, 2]]), "expected shape (2, any)"),
    (dict(times=[0.0, 1.0], values=[[1, np.nan], [3, 4]]), "not masked"),
    (dict(times=[0.0, np.inf], values=[[1, 2], [3, 4]]), "times[1] = inf is not finite"),
    (dict(times=[[0.0, 1.0]], values=[[1, 2], [3, 4]]), "expected a 1-D array, got shape (1, 2)"),
    (dict(times=["a", "b"], values=[[1, 2], [3, 4]]), "expected numbers, got dtype <U1"),
    (dict(times=[0, 1], values=[[1, 2j], [3, 4]]), "complex"),
    (dict(times=[0, 1], values=[[1, 2], [3]]), "not an array of numbers"),
    (dict(times=[0, 1], values=[[1, 2], [3, 4]], mask=[[1, 1]]), "mask: expected shape (2, 2)"),
    (dict(times=[0, 1], values=[[1, 2, 3], [3, 4, 5]]), "channels"),
])
def test_bad_series_raise_data_error(bad, message):
    ds = cvnode.Dataset(["x", "v"])
    with pytest.raises(cvnode.DataError) as e:
        ds.add("s", **bad)
    assert message in str(e.value)
    assert isinstance(e.value, ValueError)
    assert len(ds) == 0


def test_duplicate_id_and_missing_file(tmp_path):
    ds = cvnode.Dataset(["x"])
    ds.add("s", [0.0, 1.0], [1.0, 2.0])  # a 1-D values array is one channel
    with pytest.raises(cvnode.DataError, match="s"):
        ds.add("s", [0.0, 1.0], [1.0, 2.0])
    with pytest.raises(cvnode.DataError, match="nothing.h5"):
        cvnode.Dataset.read(tmp_path / "nothing.h5")


def test_generate_matches_options():
    ds = cvnode.generate("damped_oscillator", series=3, observations=7, seed=2)
    assert len(ds) == 3 and ds.observations == 21
    again = cvnode.generate("damped_oscillator", series=3, observations=7, seed=2)
    np.testing.assert_array_equal(ds[1].values, again[1].values)
    with pytest.raises(cvnode.ConfigError, match="system"):
        cvnode.generate("nonsense")


pd = pytest.importorskip("pandas")


def test_dataframe_long_and_wide_roundtrip(lv_data):
    df = lv_data.to_dataframe()
    assert list(df.columns) == ["id", "time", "channel", "value"]
    back = cvnode.Dataset.from_dataframe(df, t0=0.0)
    assert back.ids == lv_data.ids
    for s, r in zip(lv_data, back):
        seen = s.mask.any(axis=1)  # a time with nothing measured has no row in long format
        np.testing.assert_array_equal(s.times[seen], r.times)
        np.testing.assert_array_equal(s.mask[seen], r.mask)
        np.testing.assert_array_equal(s.values[s.mask], r.values[r.mask])
    wide = lv_data.to_dataframe(wide=True)
    back2 = cvnode.Dataset.from_dataframe(wide, channels=lv_data.channel_names, t0=0.0)
    np.testing.assert_array_equal(back2[3].values[back2[3].mask], lv_data[3].values[lv_data[3].mask])


def test_dataframe_errors():
    df = pd.DataFrame({"id": ["a", "a", "a"], "time": [0.0, 1.0, 1.0], "channel": ["x", "x", "x"],
                       "value": [1.0, 2.0, 3.0]})
    with pytest.raises(cvnode.DataError, match="second value"):
        cvnode.Dataset.from_dataframe(df)
    df.loc[2, "time"] = "soon"
    with pytest.raises(cvnode.DataError, match="row 2: time 'soon'"):
        cvnode.Dataset.from_dataframe(df)
    with pytest.raises(cvnode.DataError, match="no column 'value'"):
        cvnode.Dataset.from_dataframe(df.drop(columns="value"))
    ok = pd.DataFrame({"id": ["a", "a"], "time": [0.0, 1.0], "channel": ["x", "y"], "value": [1.0, np.nan]})
    ds = cvnode.Dataset.from_dataframe(ok, channels=["x", "y"])
    np.testing.assert_array_equal(ds[0].mask, [[True, False]])  # NaN value: not measured


def test_dosing_records_roundtrip_and_become_solver_events(tmp_path):
    ds = cvnode.Dataset(["conc"])
    ds.compartment_names = ["central"]
    doses = [cvnode.EventRecord(0.0, compartment=0, amount=2.0), cvnode.EventRecord(1.0, amount=4.0, rate=8.0)]
    ds.add("p1", [0.5, 1.5, 3.0], [[1.0], [0.8], [0.3]], t0=0.0, events=doses)
    ds.write(tmp_path / "pk.h5")
    back = cvnode.Dataset.read(tmp_path / "pk.h5")
    assert back.compartment_names == ["central"]
    assert back[0].events == doses and back[0].events[1].duration == 0.5
    tr = back.trajectories(dose_scale=[0.5])[0]
    assert [e.kind for e in tr.events] == ["bolus", "infusion"]
    assert tr.events[0].amount == 1.0 and tr.events[1].duration == 0.5  # amounts times dose_scale
    with pytest.raises(cvnode.DataError, match="reset_dose"):
        cvnode.EventRecord(0.0, kind="infuse")
    with pytest.raises(cvnode.DataError, match="p2"):
        ds.add("p2", [0.5], [[1.0]], t0=0.0, events=[cvnode.EventRecord(0.2, amount=-1.0)])
