// cvnode.Solver and cvnode.BatchSolver: thin owners of the C++ solvers. Options are keyword
// arguments with the names and defaults of a configuration's [solver] section (docs/config.md),
// parsed by the library's own configuration code. Every solve runs without the GIL, one at a time
// per solver object (a C++ Solver is not thread-safe; separate objects run in parallel).
#include <pybind11/stl.h>

#include <chrono>
#include <mutex>

#include "convert.h"
#include "cvnode/batch.h"
#include "app/config.h"
#include "cvnode/problem.h"
#include "cvnode/solver.h"
#include "problem.h"
#include "python_dynamics.h"
#include "solve_call.h"
#include "toml_text.h"

namespace cvnode::python {

SolverOptions solver_options(py::handle kwargs, const std::string& who, int state_size) {
  // Config validation wants a dataset name; nothing reads it here.
  const std::string text = "[data]\nfile = \"-\"\n" + toml_section("solver", kwargs);
  Config c = Config::parse(text, who + " options");
  c.train.solver.check(state_size);
  return c.train.solver;
}

namespace {

struct SolverObject {
  std::shared_ptr<Dynamics> dynamics;
  SolverOptions options;
  std::unique_ptr<Solver> solver;
  SolveGuard guard;
  SolverObject(std::shared_ptr<Dynamics> d, const SolverOptions& o)
      : dynamics(std::move(d)), options(o), solver(std::make_unique<Solver>(*dynamics, options)), guard(*dynamics) {}
};

struct BatchObject {
  std::shared_ptr<Dynamics> dynamics;
  SolverOptions options;
  BatchOptions batch;
  std::unique_ptr<BatchSolver> solver;
  SolveGuard guard;
  BatchObject(std::shared_ptr<Dynamics> d, const SolverOptions& o, const BatchOptions& b)
      : dynamics(std::move(d)), options(o), batch(b),
        solver(std::make_unique<BatchSolver>(*dynamics, options, batch)), guard(*dynamics) {}
};

std::shared_ptr<Dynamics> dynamics_arg(std::shared_ptr<Dynamics> d) {
  if (!d) fail(Kind::Config, "dynamics: expected a cvnode.Dynamics (Mlp, Hybrid, PythonDynamics ...), got None");
  return d;
}

py::list failures_list(const std::vector<SeriesFailure>& failures) {
  py::list out;
  for (const auto& f : failures)
    out.append(py::dict(py::arg("series") = f.series, py::arg("flag") = f.flag, py::arg("flag_name") = f.flag_name,
                        py::arg("time") = f.time, py::arg("message") = f.message));
  return out;
}

}  // namespace

void bind_solver(py::module_& m) {
  py::class_<SolverStats>(m, "SolverStats", "Counters of the integrations behind a result.")
      .def_readonly("steps", &SolverStats::steps)
      .def_readonly("rhs_evals", &SolverStats::rhs_evals)
      .def_readonly("quad_evals", &SolverStats::quad_evals)
      .def_readonly("jac_evals", &SolverStats::jac_evals)
      .def_readonly("lin_setups", &SolverStats::lin_setups)
      .def_readonly("lin_iters", &SolverStats::lin_iters)
      .def_readonly("jtimes_evals", &SolverStats::jtimes_evals)
      .def_readonly("nonlin_iters", &SolverStats::nonlin_iters)
      .def_readonly("err_test_fails", &SolverStats::err_test_fails)
      .def_readonly("nonlin_conv_fails", &SolverStats::nonlin_conv_fails)
      .def_readonly("checkpoints", &SolverStats::checkpoints)
      .def_readonly("restarts", &SolverStats::restarts)
      .def("brief", &SolverStats::brief)
      .def("report", &SolverStats::report)
      .def("as_dict",
           [](const SolverStats& s) {
             return py::dict(py::arg("steps") = s.steps, py::arg("rhs_evals") = s.rhs_evals,
                             py::arg("quad_evals") = s.quad_evals, py::arg("jac_evals") = s.jac_evals,
                             py::arg("lin_setups") = s.lin_setups, py::arg("lin_iters") = s.lin_iters,
                             py::arg("jtimes_evals") = s.jtimes_evals, py::arg("nonlin_iters") = s.nonlin_iters,
                             py::arg("err_test_fails") = s.err_test_fails,
                             py::arg("nonlin_conv_fails") = s.nonlin_conv_fails,
                             py::arg("checkpoints") = s.checkpoints, py::arg("restarts") = s.restarts);
           })
      .def("__repr__", [](const SolverStats& s) { return "<cvnode.SolverStats " + s.brief() + ">"; });

  py::class_<Solution>(m, "Solution", "States at the requested times (rows), with the solver statistics.")
      .def_property_readonly("times", [](const Solution& s) { return to_numpy(s.times); })
      .def_property_readonly("states", [](const Solution& s) { return to_numpy(s.states); })
      .def_readonly("stats", &Solution::stats)
      .def_readonly("nfe", &Solution::nfe);

  // Arrays are made on access: a training loop that reads loss and theta pays for nothing else.
  py::class_<Gradient>(m, "Gradient", "Loss, dLoss/dtheta, dLoss/dz0, dLoss/dphi (the loss's parameters) and the predicted states of one series.")
      .def_readonly("loss", &Gradient::loss)
      .def_property_readonly("theta", [](const Gradient& g) { return to_numpy(g.theta); })
      .def_property_readonly("z0", [](const Gradient& g) { return to_numpy(g.z0); })
      .def_property_readonly("states", [](const Gradient& g) { return to_numpy(g.states); })
      .def_property_readonly("phi", [](const Gradient& g) { return to_numpy(g.phi); })
      .def_readonly("forward", &Gradient::forward)
      .def_readonly("backward", &Gradient::backward)
      .def_readonly("nfe_forward", &Gradient::nfe_forward)
      .def_readonly("nfe_backward", &Gradient::nfe_backward)
      .def("__repr__", [](const Gradient& g) {
        return "<cvnode.Gradient loss=" + std::to_string(g.loss) + ", nfe " + std::to_string(g.nfe_forward) + " + " +
               std::to_string(g.nfe_backward) + ">";
      });

  py::class_<BatchGradient>(m, "BatchGradient",
                            "A batch's loss, dLoss/dtheta summed over its series, dLoss/dz0 per series (rows; NaN "
                            "for a failed series) and the failures when skipped.")
      .def_readonly("loss", &BatchGradient::loss)
      .def_property_readonly("theta", [](const BatchGradient& g) { return to_numpy(g.theta); })
      .def_property_readonly("z0", [](const BatchGradient& g) { return rows_to_numpy(g.z0, 0); })
      .def_property_readonly("states",
                             [](const BatchGradient& g) {
                               py::list out;
                               for (const auto& s : g.states) out.append(to_numpy(s));
                               return out;
                             })
      .def_property_readonly("phi", [](const BatchGradient& g) { return to_numpy(g.phi); })
      .def_property_readonly("series_loss",
                             [](const BatchGradient& g) {
                               return to_numpy(Vector(Eigen::Map<const Vector>(
                                   g.series_loss.data(), static_cast<Eigen::Index>(g.series_loss.size()))));
                             })
      .def_readonly("forward", &BatchGradient::forward)
      .def_readonly("backward", &BatchGradient::backward)
      .def_readonly("nfe_forward", &BatchGradient::nfe_forward)
      .def_readonly("nfe_backward", &BatchGradient::nfe_backward)
      .def_property_readonly("failures", [](const BatchGradient& g) { return failures_list(g.failures); })
      .def("__repr__", [](const BatchGradient& g) {
        return "<cvnode.BatchGradient loss=" + std::to_string(g.loss) + ", " + std::to_string(g.z0.size()) +
               " series, " + std::to_string(g.failures.size()) + " failed>";
      });

  py::class_<SolverObject, std::shared_ptr<SolverObject>>(
      m, "Solver",
      "Solves and gradients of one series at a time. Options: the keys of a configuration's [solver] section "
      "(docs/config.md), e.g. Solver(f, method='bdf', rtol=1e-8). The GIL is released while it solves.")
      .def(py::init([](std::shared_ptr<Dynamics> dynamics, py::kwargs options) {
             dynamics = dynamics_arg(std::move(dynamics));
             return std::make_shared<SolverObject>(dynamics, solver_options(options, "Solver", dynamics->state_size()));
           }),
           py::arg("dynamics"))
      .def_property_readonly("dynamics", [](const SolverObject& s) { return s.dynamics; })
      .def(
          "solve",
          [](SolverObject& s, py::handle theta, py::handle t0, py::handle z0, py::handle times) {
            const Vector th = to_vector(theta, "theta", Kind::Config, s.dynamics->param_size());
            const double t = to_double(t0, "t0", Kind::Config);
            const Vector z = to_vector(z0, "z0", Kind::Config, s.dynamics->state_size());
            const Vector ts = to_vector(times, "times", Kind::Config);
            return s.guard.run([&] { return s.solver->solve(th, t, z, ts); });
          },
          py::arg("theta"), py::arg("t0"), py::arg("z0"), py::arg("times"),
          "States at `times` (non-decreasing, >= t0) from z(t0) = z0.")
      .def(
          "gradient",
          [](SolverObject& s, py::handle theta, py::handle series, py::handle loss, int index) {
            const Vector th = to_vector(theta, "theta", Kind::Config, s.dynamics->param_size());
            std::unique_ptr<Problem> storage;
            const Problem& problem = problem_arg(series, loss, "half_sse", true, storage);
            if (index < 0 || index >= problem.size())
              fail(Kind::Config, "series = " + std::to_string(index) + " is not a series of the problem (" +
                                     std::to_string(problem.size()) + ")");
            return s.guard.run([&] { return s.solver->gradient(th, problem, index); });
          },
          py::arg("theta"), py::arg("series"), py::arg("loss") = py::none(), py::arg("index") = 0,
          "Loss and gradient of one series: a Trajectory with a loss (default half_sse), or series `index` of a "
          "Problem (with the problem's normalisation: a mean loss divides by all its entries). Adjoint for "
          "adams/bdf, backpropagation for dopri5.");

  py::class_<BatchObject, std::shared_ptr<BatchObject>>(
      m, "BatchSolver",
      "Gradients of many series over threads, summed in series order: bit-identical for any thread count. "
      "threads, mode (per_series, stacked, auto) and stack_size as in a configuration's [run] section; "
      "skip_failures: failed series are listed in the result and left out instead of raising SolverError; the "
      "other keyword arguments are [solver] options.")
      .def(py::init([](std::shared_ptr<Dynamics> dynamics, int threads, const std::string& mode, int stack_size,
                       bool skip_failures, py::kwargs options) {
             dynamics = dynamics_arg(std::move(dynamics));
             BatchOptions b;
             b.threads = threads;
             b.mode = parse_batch_mode(mode);
             b.stack_size = stack_size;
             b.skip_failures = skip_failures;
             if (stack_size < 1) fail(Kind::Config, "BatchSolver: stack_size = " + std::to_string(stack_size) + " must be >= 1");
             return std::make_shared<BatchObject>(dynamics, solver_options(options, "BatchSolver", dynamics->state_size()),
                                                  b);
           }),
           py::arg("dynamics"), py::arg("threads") = 1, py::arg("mode") = "per_series", py::arg("stack_size") = 32,
           py::arg("skip_failures") = false)
      .def_property_readonly("dynamics", [](const BatchObject& s) { return s.dynamics; })
      .def_property_readonly("threads", [](const BatchObject& s) { return s.solver->threads(); })
      .def(
          "gradient",
          [](BatchObject& s, py::handle theta, py::handle problem, py::handle loss) {
            const Vector th = to_vector(theta, "theta", Kind::Config, s.dynamics->param_size());
            std::unique_ptr<Problem> storage;
            const Problem& p = problem_arg(problem, loss, "mse_mean", false, storage);
            return s.guard.run([&] { return s.solver->gradient(th, p); });
          },
          py::arg("theta"), py::arg("problem"), py::arg("loss") = py::none(),
          "Loss and gradient of every series of a Problem, or of a list of Trajectory (or a Batch) with a loss "
          "(default mse_mean: the mean over the observed entries of all series). A Problem built once saves "
          "converting the series at every call.")
      .def(
          "_time_gradient",
          [](BatchObject& s, py::handle theta, const Problem& problem, int repeats) {
            // The same gradient timed call by call inside C++ (bench/python_overhead.py compares it
            // with the time of the Python call).
            const Vector th = to_vector(theta, "theta", Kind::Config, s.dynamics->param_size());
            Vector seconds(std::max(repeats, 1));
            s.guard.run([&] {
              for (Eigen::Index r = 0; r < seconds.size(); ++r) {
                const auto start = std::chrono::steady_clock::now();
                const BatchGradient g = s.solver->gradient(th, problem);
                seconds[r] = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
              }
              return 0;
            });
            return to_numpy(seconds);
          },
          py::arg("theta"), py::arg("problem"), py::arg("repeats"))
      .def(
          "solve",
          [](BatchObject& s, py::handle theta, py::handle batch) {
            const Vector th = to_vector(theta, "theta", Kind::Config, s.dynamics->param_size());
            std::vector<Trajectory> storage;
            const std::vector<Trajectory>& b = batch_arg(batch, storage);
            return s.guard.run([&] { return s.solver->solve(th, b); });
          },
          py::arg("theta"), py::arg("batch"),
          "Forward solves at each series' own observation times (per series, in parallel).");
}

}  // namespace cvnode::python
