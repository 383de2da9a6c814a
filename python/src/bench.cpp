// cvnode.BenchProblem: a gradient benchmark problem of ../shared/bench (its network, series, loss
// and independent reference), for checks and for bench/python_overhead.py.
#include <pybind11/stl.h>

#include "convert.h"
#include "app/bench_problem.h"
#include "problem.h"

namespace cvnode::python {

void bind_bench(py::module_& m) {
  py::class_<BenchProblem, std::shared_ptr<BenchProblem>>(
      m, "BenchProblem", "A benchmark problem file of ../shared/bench (B1, B1L, B2, B3): read(path).")
      .def_static(
          "read",
          [](py::handle path) {
            const std::string p = py::str(py::module_::import("os").attr("fspath")(path));
            py::gil_scoped_release release;
            return std::make_shared<BenchProblem>(BenchProblem::load(p));
          },
          py::arg("path"))
      .def_readonly("name", &BenchProblem::name)
      .def_readonly("about", &BenchProblem::about)
      .def_property_readonly("loss", [](const BenchProblem& p) { return std::const_pointer_cast<Loss>(p.loss); })
      .def("problem", [](const BenchProblem& p) { return std::make_shared<Problem>(p.trajectories, p.loss); },
           "The problem's series and loss as a cvnode.Problem.")
      .def_readonly("ref_loss", &BenchProblem::ref_loss)
      .def_property_readonly("layers", [](const BenchProblem& p) { return p.spec.layers; })
      .def_property_readonly("k_diag", [](const BenchProblem& p) { return to_numpy(p.spec.k_diag); })
      .def_property_readonly("theta", [](const BenchProblem& p) { return to_numpy(p.theta); })
      .def_property_readonly("ref_grad", [](const BenchProblem& p) { return to_numpy(p.ref_grad); })
      .def_property_readonly("trajectories",
                             [](const BenchProblem& p) {
                               auto b = std::make_shared<Batch>();
                               b->items = p.trajectories;
                               return b;
                             })
      .def("dynamics", [](const BenchProblem& p) { return std::make_shared<Mlp>(p.spec); },
           "The problem's network as a cvnode.Mlp (with its k_diag).");
}

}  // namespace cvnode::python
