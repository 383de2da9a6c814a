"""Gradients from Python: against central finite differences, the shared reference, thread
counts, and the GIL released while solving."""
import sys
import threading

import numpy as np
import pytest

import cvnode
from conftest import spiral_trajectory


def fd_gradient(loss_at, x, h):
    g = np.zeros_like(x)
    for i in range(len(x)):
        e = np.zeros_like(x)
        e[i] = h
        g[i] = (loss_at(x + e) - loss_at(x - e)) / (2 * h)
    return g


@pytest.mark.parametrize("method", ["adams", "bdf", "dopri5"])
def test_solver_gradient_matches_finite_differences(method):
    f = cvnode.Mlp([2, 8, 2], activation="tanh")
    theta = f.initial_parameters("glorot", seed=4)
    tr = spiral_trajectory()
    solver = cvnode.Solver(f, method=method, rtol=1e-12, atol=1e-12)
    g = solver.gradient(theta, tr, "half_sse")
    assert g.theta.shape == theta.shape and g.z0.shape == (2,) and g.states.shape == (4, 2)
    assert g.nfe_forward > 0 and g.forward.steps > 0 and g.backward.steps >= 0
    # h = 1e-4: truncation ~h^2 * |f'''| ~ 1e-8, solver noise ~1e-12 / h = 1e-8; the gradient is O(1).
    fd = fd_gradient(lambda th: solver.gradient(th, tr, "half_sse").loss, theta, 1e-4)
    assert np.linalg.norm(g.theta - fd) / np.linalg.norm(fd) < 1e-6
    # dLoss/dz0 through a trajectory with a perturbed initial state.
    def loss_z0(z0):
        t = cvnode.Trajectory(tr.t0, z0, tr.times, tr.values, mask=tr.mask)
        return solver.gradient(theta, t, "half_sse").loss
    fdz = fd_gradient(loss_z0, tr.z0, 1e-4)
    assert np.linalg.norm(g.z0 - fdz) / np.linalg.norm(fdz) < 1e-6


def test_b1_gradient_matches_the_shared_reference(bench_dir):
    p = cvnode.BenchProblem.read(bench_dir / "B1.h5")
    solver = cvnode.BatchSolver(p.dynamics(), rtol=1e-10, atol=1e-10)
    g = solver.gradient(p.theta, p.problem())
    # README: 5.0e-10 at rtol 1e-10 for the C++ call; the same call here.
    assert np.linalg.norm(g.theta - p.ref_grad) / np.linalg.norm(p.ref_grad) < 1e-8
    assert abs(g.loss - p.ref_loss) / p.ref_loss < 1e-8
    assert g.z0.shape == (len(p.trajectories), 2)
    again = solver.gradient(p.theta, p.trajectories, p.loss)  # series and a Loss: the same problem
    np.testing.assert_array_equal(again.theta, g.theta)


def test_batch_threads_give_identical_bits(lv_data):
    f = cvnode.Mlp([2, 16, 2])
    theta = f.initial_parameters("small_output", seed=2)
    batch = lv_data.trajectories()
    one = cvnode.BatchSolver(f, threads=1, rtol=1e-7).gradient(theta, batch, "mse_mean")
    two = cvnode.BatchSolver(f, threads=2, rtol=1e-7).gradient(theta, list(batch), "mse_mean")
    assert one.loss == two.loss
    np.testing.assert_array_equal(one.theta, two.theta)
    np.testing.assert_array_equal(one.z0, two.z0)
    stacked = cvnode.BatchSolver(f, threads=2, mode="stacked", stack_size=4, rtol=1e-7).gradient(
        theta, batch, "mse_mean")
    # Stacked series take other steps: the same gradient up to the integration error.
    assert np.linalg.norm(stacked.theta - one.theta) / np.linalg.norm(one.theta) < 1e-4


def test_solve_states_match_the_gradients_states():
    f = cvnode.LotkaVolterra()
    theta = cvnode.LotkaVolterra.default_parameters()
    tr = cvnode.Trajectory(0.0, [1.0, 0.5], [0.5, 1.0, 2.0], np.ones((3, 2)))
    s = cvnode.Solver(f, rtol=1e-10, atol=1e-12)
    sol = s.solve(theta, 0.0, [1.0, 0.5], [0.0, 0.5, 1.0, 2.0])
    np.testing.assert_array_equal(sol.times, [0.0, 0.5, 1.0, 2.0])
    np.testing.assert_array_equal(sol.states[0], [1.0, 0.5])
    g = s.gradient(theta, tr)
    np.testing.assert_allclose(sol.states[1:], g.states, rtol=1e-8)
    assert sol.nfe > 0 and sol.stats.steps > 0


def test_gil_is_released_while_solving():
    f = cvnode.Mlp([2, 32, 32, 2])
    theta = f.initial_parameters("glorot", seed=1)
    times = np.linspace(0.25, 5.0, 20)
    batch = cvnode.Batch([cvnode.Trajectory(0.0, [np.cos(a), np.sin(a)], times, np.zeros((20, 2)))
                          for a in np.linspace(0, 2 * np.pi, 64)])
    solver = cvnode.BatchSolver(f, rtol=1e-8, atol=1e-10)
    # Counted work, not time: with the switch interval far above the test's length, the
    # interpreter never takes the GIL from a thread; a thread gives it up only by blocking or by
    # releasing it in C. The solving thread sets in_call and calls gradient(): this thread (back
    # from start(), which blocks) can run Python code while in_call is True only if the call
    # released the GIL, and then it does all of its `work` iterations before the solving thread
    # can clear in_call (that needs the GIL, which this thread holds until join() blocks).
    # Held GIL: 0 iterations on any machine. Released: `work`, unless this thread was not scheduled
    # at all during a whole call (a loaded machine): another call is tried then.
    work = 10000
    state = {"in_call": False}

    def solve():
        state["in_call"] = True
        solver.gradient(theta, batch, "mse_mean")
        state["in_call"] = False

    interval = sys.getswitchinterval()
    sys.setswitchinterval(1000.0)
    try:
        for attempt in range(5):
            t = threading.Thread(target=solve)
            t.start()
            done = 0
            while state["in_call"] and done < work:
                done += 1
            t.join()
            if done == work:
                break
    finally:
        sys.setswitchinterval(interval)
    assert done == work, (done, attempt)


def test_solver_keeps_its_dynamics_alive():
    solver = cvnode.Solver(cvnode.Mlp([2, 4, 2]))
    import gc
    gc.collect()
    f = solver.dynamics
    assert f.param_size == 2 * 4 + 4 + 4 * 2 + 2
    sol = solver.solve(np.zeros(f.param_size), 0.0, [1.0, 2.0], [1.0])
    np.testing.assert_array_equal(sol.states[-1], [1.0, 2.0])  # f = 0


def test_hybrid_model_gradient_against_finite_differences():
    h = cvnode.hybrid_model(kind="linear_decay", size=2, transform="log", initial=[0.5, 2.0],
                            network=[2, 6, 2], output_mask=[0.1, 0.1], seed=3)
    assert h.physics_size == 2
    np.testing.assert_allclose(h.physical(h.initial), [0.5, 2.0])
    tr = spiral_trajectory()
    solver = cvnode.Solver(h.dynamics, rtol=1e-12, atol=1e-12)
    g = solver.gradient(h.initial, tr, "half_sse")
    fd = fd_gradient(lambda th: solver.gradient(th, tr, "half_sse").loss, h.initial, 1e-4)
    assert np.linalg.norm(g.theta - fd) / np.linalg.norm(fd) < 1e-6


def test_problem_normalises_a_mean_loss_over_all_its_series(lv_data):
    f = cvnode.Mlp([2, 8, 2])
    theta = f.initial_parameters("glorot", seed=5)
    problem = cvnode.Problem(lv_data.trajectories(), "mse_mean")
    assert len(problem) == len(lv_data) and problem.loss.name == "mse_mean" and problem.loss.reduction == "mean"
    assert problem.entries == sum(s.mask.sum() for s in lv_data)
    batch = cvnode.BatchSolver(f, rtol=1e-9, atol=1e-11).gradient(theta, problem)
    one = cvnode.Solver(f, rtol=1e-9, atol=1e-11)
    parts = [one.gradient(theta, problem, index=i) for i in range(len(problem))]
    # Each series' terms carry 1 / (all the problem's entries): the parts add up to the batch.
    assert sum(p.loss for p in parts) == pytest.approx(batch.loss, rel=1e-12)
    np.testing.assert_allclose(sum(p.theta for p in parts), batch.theta, rtol=1e-10, atol=1e-14)
    assert "mse_mean" in cvnode.loss_kinds()
