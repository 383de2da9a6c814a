"""cvnode.fit from Python against `cvnode fit`, callbacks, resume, checkpoints, predict, evaluate."""
import subprocess
import tomllib

import numpy as np
import pytest

import cvnode


def config(data_file, epochs=3):
    return {
        "data": {"file": str(data_file), "train_fraction": 0.75, "val_fraction": 0.25},
        "model": {"hidden": [8], "seed": 2},
        "solver": {"rtol": 1e-6, "atol": 1e-8},
        "optimizer": {"lr": 0.02},
        "run": {"epochs": epochs, "batch_size": 4, "threads": 2},
    }


def toml_text(cfg):
    lines = []
    for section, keys in cfg.items():
        lines.append(f"[{section}]")
        for k, v in keys.items():
            lines.append(f"{k} = {v!r}" if not isinstance(v, str) else f'{k} = "{v}"')
    return "\n".join(lines).replace("'", '"') + "\n"


@pytest.fixture(scope="module")
def data_file(tmp_path_factory, lv_data):
    path = tmp_path_factory.mktemp("data") / "lv.h5"
    lv_data.write(path)
    return path


def test_python_fit_gives_the_cli_parameters_bit_for_bit(tmp_path, data_file, cli):
    cfg = config(data_file)
    (tmp_path / "fit.toml").write_text(toml_text(cfg))
    subprocess.run([cli, "fit", "--config", str(tmp_path / "fit.toml"), "--out", str(tmp_path / "cli"),
                    "--quiet", "--no-plots"], check=True, capture_output=True)
    from_dict = cvnode.fit(cfg, tmp_path / "py_dict")
    from_file = cvnode.fit(tmp_path / "fit.toml", tmp_path / "py_file")
    for name in ("best.h5", "latest.h5"):
        ref = cvnode.load_checkpoint(tmp_path / "cli" / name).parameters
        np.testing.assert_array_equal(cvnode.load_checkpoint(tmp_path / "py_dict" / name).parameters, ref)
        np.testing.assert_array_equal(cvnode.load_checkpoint(tmp_path / "py_file" / name).parameters, ref)
    np.testing.assert_array_equal(from_dict.best_params, cvnode.load_checkpoint(tmp_path / "cli" / "best.h5").parameters)
    cli_history = cvnode.load_checkpoint(tmp_path / "cli" / "latest.h5").history
    np.testing.assert_array_equal(from_dict.history["train_loss"], cli_history["train_loss"])
    assert from_file.epochs == 3 and from_dict.best_epoch == from_file.best_epoch


def test_callback_interrupt_and_resume(tmp_path, data_file):
    seen = []
    result = cvnode.fit(config(data_file), tmp_path / "full", callback=seen.append)
    assert [m["epoch"] for m in seen] == [1, 2, 3]
    assert set(seen[0]) >= {"train_loss", "val_loss", "lr", "nfe_forward", "grad_norm", "seconds"}
    np.testing.assert_array_equal(result.history["train_loss"], [m["train_loss"] for m in seen])

    class Stop(Exception):
        pass

    def stop_after_first(metrics):
        if metrics["epoch"] == 1:
            raise Stop()

    with pytest.raises(Stop):
        cvnode.fit(config(data_file), tmp_path / "cut", callback=stop_after_first)
    assert cvnode.load_checkpoint(tmp_path / "cut" / "latest.h5").epoch == 1
    resumed = cvnode.fit(None, tmp_path / "cut", resume=tmp_path / "cut" / "latest.h5")
    assert resumed.epochs == 3
    np.testing.assert_array_equal(resumed.params, result.params)


def test_overrides_and_bad_configs(tmp_path, data_file):
    lines = []
    r = cvnode.fit(config(data_file), tmp_path / "o", overrides={"run.epochs": 1, "solver.rtol": 1e-7},
                   log=lines.append)
    assert r.epochs == 1 and tomllib.loads(r.config)["solver"]["rtol"] == 1e-7 and lines
    with pytest.raises(cvnode.ConfigError, match="unknown key 'solver.rtoll'"):
        cvnode.fit({"data": {"file": str(data_file)}, "solver": {"rtoll": 1}}, tmp_path / "x")
    with pytest.raises(cvnode.ConfigError, match="section"):
        cvnode.fit({"data": {"file": str(data_file)}, "epochs": 3}, tmp_path / "x")
    with pytest.raises(cvnode.ConfigError, match="optimizer.lr"):
        cvnode.fit(config(data_file), tmp_path / "x", overrides=["optimizer.lr=\"fast\""])
    with pytest.raises(cvnode.DataError, match="missing.h5"):
        cvnode.fit({"data": {"file": str(tmp_path / "missing.h5")}}, tmp_path / "x")


def test_checkpoint_predict_and_evaluate(tmp_path, data_file, lv_data):
    r = cvnode.fit(config(data_file), tmp_path / "run")
    model = cvnode.load_checkpoint(r.best_checkpoint)
    np.testing.assert_array_equal(model.parameters, r.best_params)
    assert model.observed == 2 and model.normalization is not None
    ev = cvnode.evaluate(r.best_checkpoint, "val")
    assert ev.loss == pytest.approx(r.best_val_loss, rel=1e-12)  # the same validation solves
    assert ev.rmse.shape == (2,) and ev.series == 3 and not ev.failed
    # predict against a solve of the model's dynamics by hand: normalise, start at the first
    # observation, solve, denormalise.
    s = next(s for s in lv_data if s.mask[0].all())
    pred = model.predict(s)[0]
    n = model.normalization
    solver = cvnode.Solver(model.dynamics, rtol=1e-6, atol=1e-8)
    z0 = (s.values[0] - n.mean) / n.std
    states = solver.solve(model.theta, s.times[0], z0, s.times).states
    np.testing.assert_allclose(pred, states * n.std + n.mean, rtol=1e-12, atol=1e-12)
    grid = np.linspace(s.times[0], s.times[-1] + 1.0, 50)
    assert model.predict(s, times=grid)[0].shape == (50, 2)
    assert len(model.predict(lv_data)) == len(lv_data)
    with pytest.raises(cvnode.DataError, match="channels"):
        model.predict(cvnode.Series("one", [0.0, 1.0], [[1.0], [2.0]]))
