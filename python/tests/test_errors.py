"""Bad input from Python raises one clear, typed exception: never a crash."""
import numpy as np
import pytest

import cvnode
from conftest import spiral_trajectory


@pytest.fixture(scope="module")
def model():
    f = cvnode.Mlp([2, 4, 2])
    return f, f.initial_parameters(), cvnode.Solver(f)


@pytest.mark.parametrize("theta, message", [
    (np.zeros(5), "theta: expected 22 entries, got 5"),
    (np.zeros((22, 1)), "theta: expected a 1-D array, got shape (22, 1)"),
    (np.full(22, np.nan), "theta[0] = nan is not finite"),
    (np.zeros(22, dtype=complex), "complex"),
    (["a"] * 22, "expected numbers"),
    (None, "expected an array of numbers, got None"),
])
def test_bad_theta(model, theta, message):
    f, _, solver = model
    with pytest.raises(cvnode.ConfigError) as e:
        solver.gradient(theta, spiral_trajectory())
    assert message in str(e.value)


@pytest.mark.parametrize("args, message", [
    (dict(t0=0.0, z0=[1.0, 2.0, 3.0], times=[1.0]), "z0: expected 2 entries, got 3"),
    (dict(t0=0.0, z0=[1.0, np.nan], times=[1.0]), "z0[1] = nan is not finite"),
    (dict(t0=0.0, z0=[1.0, 2.0], times=[1.0, 0.5]), "non-decreasing"),
    (dict(t0=0.0, z0=[1.0, 2.0], times=[-1.0]), ">= t0"),
    (dict(t0=np.nan, z0=[1.0, 2.0], times=[1.0]), "t0 = nan is not finite"),
    (dict(t0=0.0, z0=[1.0, 2.0], times=[[1.0]]), "times: expected a 1-D array"),
])
def test_bad_solve_arguments(model, args, message):
    _, theta, solver = model
    with pytest.raises(cvnode.ConfigError) as e:
        solver.solve(theta, **args)
    assert message in str(e.value)


@pytest.mark.parametrize("kwargs, message", [
    (dict(t0=0.0, z0=[1.0, 2.0], times=[0.5, 0.5], values=np.ones((2, 2))), "strictly increasing"),
    (dict(t0=0.0, z0=[1.0, 2.0], times=[0.5, 0.2], values=np.ones((2, 2))), "strictly increasing"),
    (dict(t0=1.0, z0=[1.0, 2.0], times=[0.5], values=np.ones((1, 2))), "before t0"),
    (dict(t0=0.0, z0=[1.0, 2.0], times=[0.5], values=np.ones((2, 2))), "values: expected shape (1, any)"),
    (dict(t0=0.0, z0=[1.0, 2.0], times=[0.5], values=[[np.nan, 1.0]]), "not finite and not masked"),
    (dict(t0=0.0, z0=[], times=[0.5], values=[[1.0]]), "z0 is empty"),
    (dict(t0=0.0, z0=[1.0, 2.0], times=[0.5], values=[["x", "y"]]), "expected numbers, got dtype"),
    (dict(t0=0.0, z0=[1.0, 2.0], times=[0.5], values=[[1.0, 2.0]], mask=[[1, 0, 1]]), "mask: expected shape (1, 2)"),
])
def test_bad_trajectory(kwargs, message):
    with pytest.raises(cvnode.DataError) as e:
        cvnode.Trajectory(**kwargs)
    assert message in str(e.value)


def test_trajectory_that_does_not_fit_the_model(model):
    _, theta, solver = model
    tr = cvnode.Trajectory(0.0, [1.0, 2.0, 3.0], [1.0], [[1.0, 2.0, 3.0]])
    with pytest.raises(cvnode.ConfigError, match="z0 has 3 entries"):
        solver.gradient(theta, tr)
    with pytest.raises(cvnode.DataError, match="list of Trajectory"):
        cvnode.BatchSolver(model[0]).gradient(theta, spiral_trajectory())
    with pytest.raises(cvnode.DataError, match="cvnode.Trajectory items"):
        cvnode.BatchSolver(model[0]).gradient(theta, [spiral_trajectory(), "x"])
    with pytest.raises(TypeError):
        solver.gradient(theta, "not a trajectory")


def test_bad_options_and_losses(model):
    f, theta, solver = model
    with pytest.raises(cvnode.ConfigError, match="unknown key 'solver.rtoll'"):
        cvnode.Solver(f, rtoll=1e-6)
    with pytest.raises(cvnode.ConfigError, match="rtol"):
        cvnode.Solver(f, rtol=-1.0)
    with pytest.raises(cvnode.ConfigError, match="method"):
        cvnode.Solver(f, method="rk4")
    with pytest.raises(cvnode.ConfigError, match="stack_size"):
        cvnode.BatchSolver(f, stack_size=0)
    with pytest.raises(cvnode.ConfigError):
        solver.gradient(theta, spiral_trajectory(), "l3_mean")
    with pytest.raises(cvnode.ConfigError, match="sigma"):
        solver.gradient(theta, spiral_trajectory(), cvnode.Loss("gaussian_nll"))
    with pytest.raises(cvnode.ConfigError, match="own loss"):
        solver.gradient(theta, cvnode.Problem([spiral_trajectory()]), "half_sse")
    with pytest.raises(cvnode.ConfigError, match="series = 3"):
        solver.gradient(theta, cvnode.Problem([spiral_trajectory()]), index=3)
    with pytest.raises(cvnode.ConfigError, match="layers"):
        cvnode.Mlp([2])
    with pytest.raises(cvnode.ConfigError, match="activation|relu"):
        cvnode.Mlp([2, 3, 2], activation="rleu")
    with pytest.raises(cvnode.ConfigError, match="dynamics"):
        cvnode.Solver(None)


def test_solver_failure_is_a_typed_error_with_flag_and_time():
    f = cvnode.LotkaVolterra()
    solver = cvnode.Solver(f, max_steps=3)
    with pytest.raises(cvnode.SolverError) as e:
        solver.solve(cvnode.LotkaVolterra.default_parameters(), 0.0, [1.0, 1.0], [50.0])
    err = e.value
    assert err.flag_name == "CV_TOO_MUCH_WORK" and err.flag == -1
    assert 0 < err.time_reached < 50
    assert isinstance(err, RuntimeError) and isinstance(err, cvnode.Error)
    # The solver is usable afterwards.
    ok = cvnode.Solver(f).solve(cvnode.LotkaVolterra.default_parameters(), 0.0, [1.0, 1.0], [1.0])
    assert np.all(np.isfinite(ok.states))


def test_batch_failures_can_be_skipped():
    f = cvnode.LotkaVolterra()
    theta = cvnode.LotkaVolterra.default_parameters()
    short = cvnode.Trajectory(0.0, [1.0, 1.0], [0.1], [[1.0, 1.0]])
    long = cvnode.Trajectory(0.0, [1.0, 1.0], [40.0], [[1.0, 1.0]])
    with pytest.raises(cvnode.SolverError):
        cvnode.BatchSolver(f, max_steps=20).gradient(theta, [short, long], "half_sse")
    g = cvnode.BatchSolver(f, max_steps=20, skip_failures=True).gradient(theta, [short, long], "half_sse")
    assert [x["series"] for x in g.failures] == [1]
    assert g.failures[0]["flag_name"] == "CV_TOO_MUCH_WORK"
    assert np.all(np.isnan(g.z0[1])) and np.all(np.isfinite(g.z0[0]))


def test_events_controls_and_covariates_are_checked():
    tr = cvnode.Trajectory(0.0, [1.0, 0.0], [1.0, 2.0], np.ones((2, 2)),
                           events=[cvnode.Event(0.5, compartment=1, kind="bolus", amount=2.0)],
                           controls=cvnode.Controls([0.0, 1.0], [[1.0], [0.0]], "linear"), covariates=[70.0])
    assert tr.events[0].kind == "bolus" and tr.events[0].amount == 2.0 and tr.events[0].compartment == 1
    assert tr.controls.interpolation == "linear" and tr.covariates.tolist() == [70.0]
    with pytest.raises(cvnode.DataError, match="compartment"):
        cvnode.Trajectory(0.0, [1.0, 0.0], [1.0], [[1.0, 1.0]], events=[cvnode.Event(0.5, compartment=2, amount=1.0)])
    with pytest.raises(cvnode.DataError, match="amount"):
        cvnode.Trajectory(0.0, [1.0, 0.0], [1.0], [[1.0, 1.0]], events=[cvnode.Event(0.5, amount=-1.0)])
    with pytest.raises(cvnode.DataError, match="before t0"):
        cvnode.Trajectory(1.0, [1.0, 0.0], [2.0], [[1.0, 1.0]], events=[cvnode.Event(0.5, amount=1.0)])
    with pytest.raises(cvnode.DataError, match="cvnode.Event"):
        cvnode.Trajectory(0.0, [1.0, 0.0], [1.0], [[1.0, 1.0]], events=[(0.5, 0, "bolus", 1.0)])
    with pytest.raises(cvnode.ConfigError, match="shot"):
        cvnode.Event(0.5, kind="shot")
    with pytest.raises(cvnode.DataError, match="Controls: values"):
        cvnode.Controls([0.0, 1.0], [[1.0]])
