"""Dynamics written in Python: the same gradients as the C++ model they copy, errors raised as
the Python exceptions they are, and threads that neither deadlock nor change the result."""
import numpy as np
import pytest

import cvnode


def lv_f(t, z, p):
    a, b, d, g = p
    x, y = z
    return np.array([a * x - b * x * y, d * x * y - g * y])


def lv_vjp(t, z, p, w):
    a, b, d, g = p
    x, y = z
    J = np.array([[a - b * y, -b * x], [d * y, d * x - g]])
    dfdp = np.array([[x, -x * y, 0, 0], [0, 0, x * y, -y]])
    return J.T @ w, dfdp.T @ w


def trajectories():
    out = []
    for k in range(3):
        times = np.linspace(0.2, 3.0, 6) + 0.05 * k
        out.append(cvnode.Trajectory(0.0, [1.0 + 0.1 * k, 0.8], times, np.full((6, 2), 1.0)))
    return out


THETA = cvnode.LotkaVolterra.default_parameters()


@pytest.mark.parametrize("with_vjp", [True, False])
def test_python_lotka_volterra_gives_the_cpp_gradient(with_vjp):
    ref = cvnode.BatchSolver(cvnode.LotkaVolterra(), rtol=1e-10, atol=1e-12).gradient(THETA, trajectories(), "half_sse")
    py = cvnode.PythonDynamics(2, 4, lv_f, vjp=lv_vjp if with_vjp else None, smooth=True)
    assert py.has_vjp == with_vjp
    g = cvnode.BatchSolver(py, rtol=1e-10, atol=1e-12).gradient(THETA, trajectories(), "half_sse")
    assert abs(g.loss - ref.loss) <= 1e-12 * abs(ref.loss)  # f is the same arithmetic
    # Analytic VJP: the same products; central differences of f: about 1e-8 relative
    # (cbrt(eps)^2 truncation).
    tol = 1e-9 if with_vjp else 1e-6
    assert np.linalg.norm(g.theta - ref.theta) / np.linalg.norm(ref.theta) < tol
    assert np.linalg.norm(g.z0 - ref.z0) / np.linalg.norm(ref.z0) < tol


def test_bdf_uses_the_jacobian_from_the_vjp():
    py = cvnode.PythonDynamics(2, 4, lv_f, vjp=lv_vjp)
    J = py.jacobian(0.0, [1.0, 2.0], THETA)
    np.testing.assert_allclose(J, cvnode.LotkaVolterra().jacobian(0.0, [1.0, 2.0], THETA), rtol=1e-14)
    tr = trajectories()[0]
    g = cvnode.Solver(py, method="bdf", rtol=1e-9, atol=1e-11).gradient(THETA, tr)
    ref = cvnode.Solver(cvnode.LotkaVolterra(), method="bdf", rtol=1e-9, atol=1e-11).gradient(THETA, tr)
    np.testing.assert_allclose(g.theta, ref.theta, rtol=1e-9)


def test_threads_with_python_dynamics_keep_their_bits():
    py = cvnode.PythonDynamics(2, 4, lv_f, vjp=lv_vjp)
    one = cvnode.BatchSolver(py, threads=1).gradient(THETA, trajectories(), "mse_mean")
    two = cvnode.BatchSolver(py, threads=2).gradient(THETA, trajectories(), "mse_mean")
    np.testing.assert_array_equal(one.theta, two.theta)


class Boom(Exception):
    pass


def test_exception_in_f_comes_back_as_itself():
    calls = []

    def f(t, z, p):
        calls.append(t)
        if t > 0.5:
            raise Boom(f"boom at t = {t:.3f}")
        return -z

    py = cvnode.PythonDynamics(2, 0, f)
    solver = cvnode.Solver(py)
    with pytest.raises(Boom, match="boom at t") as e:
        solver.solve(np.zeros(0), 0.0, [1.0, 1.0], [2.0])
    assert "PythonDynamics f callback" in " ".join(getattr(e.value, "__notes__", []))
    n = len(calls)
    assert n < 100  # the solve stopped at the first failure
    # The next solve starts afresh.
    ok = solver.solve(np.zeros(0), 0.0, [1.0, 1.0], [0.4])
    np.testing.assert_allclose(ok.states[0], np.exp(-0.4), rtol=1e-4)


def test_exception_in_vjp_with_threads():
    def vjp(t, z, p, a):
        raise Boom("vjp failed")

    py = cvnode.PythonDynamics(2, 4, lv_f, vjp=vjp)
    with pytest.raises(Boom, match="vjp failed"):
        cvnode.BatchSolver(py, threads=2).gradient(THETA, trajectories(), "half_sse")
    with pytest.raises(Boom):
        py.vjp(0.0, [1.0, 1.0], THETA, [1.0, 0.0])


@pytest.mark.parametrize("f, message", [
    (lambda t, z, p: np.zeros(3), "f(t, z, theta) returned: expected 2 entries, got 3"),
    (lambda t, z, p: "no", "expected numbers"),
    (lambda t, z, p: None, "expected an array of numbers, got None"),
])
def test_bad_results_raise_config_error(f, message):
    solver = cvnode.Solver(cvnode.PythonDynamics(2, 0, f))
    with pytest.raises(cvnode.ConfigError) as e:
        solver.solve(np.zeros(0), 0.0, [1.0, 1.0], [1.0])
    assert message in str(e.value)


def test_bad_vjp_pair_and_construction():
    py = cvnode.PythonDynamics(2, 4, lv_f, vjp=lambda t, z, p, a: np.zeros(2))
    with pytest.raises(cvnode.ConfigError, match="pair"):
        cvnode.Solver(py).gradient(THETA, trajectories()[0])
    with pytest.raises(cvnode.ConfigError, match="callable"):
        cvnode.PythonDynamics(2, 0, "not callable")
    with pytest.raises(cvnode.ConfigError, match="state_size"):
        cvnode.PythonDynamics(0, 0, lv_f)


def test_non_finite_f_is_a_solver_error():
    solver = cvnode.Solver(cvnode.PythonDynamics(1, 0, lambda t, z, p: np.array([np.nan])))
    with pytest.raises(cvnode.SolverError, match="not finite"):
        solver.solve(np.zeros(0), 0.0, [1.0], [1.0])


def test_python_network_inside_a_hybrid():
    net = cvnode.PythonDynamics(2, 1, lambda t, z, p: -p[0] * z)
    h = cvnode.Hybrid(physics=cvnode.LinearDecay(2), network=net)
    theta = np.array([0.5, 0.25, 1.0])  # k1, k2, network p
    tr = trajectories()[0]
    g = cvnode.Solver(h, rtol=1e-10, atol=1e-12).gradient(theta, tr)
    # f = -(k + p) z: the network's parameter enters like each rate does.
    ref = cvnode.Solver(cvnode.LinearDecay(2), rtol=1e-10, atol=1e-12).gradient(theta[:2] + 1.0, tr)
    np.testing.assert_allclose(g.theta[:2], ref.theta, rtol=1e-6)
    assert abs(g.theta[2] - ref.theta.sum()) < 1e-6 * abs(ref.theta.sum())
    bad = cvnode.Hybrid(physics=cvnode.LinearDecay(2),
                        network=cvnode.PythonDynamics(2, 0, lambda t, z, p: 1 / 0))
    with pytest.raises(ZeroDivisionError):
        cvnode.Solver(bad).gradient(theta[:2], tr)
