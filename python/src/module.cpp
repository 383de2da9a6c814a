// The compiled part of the `cvnode` Python package (python/cvnode/__init__.py re-exports it).
#include <pybind11/pybind11.h>

#include "convert.h"
#include "problem.h"
#include "python_dynamics.h"

namespace cvnode::python {
void bind_data(py::module_& m);
void bind_models(py::module_& m);
void bind_solver(py::module_& m);
void bind_train(py::module_& m);
void bind_bench(py::module_& m);
}  // namespace cvnode::python

PYBIND11_MODULE(_cvnode, m) {
  namespace cp = cvnode::python;
  m.doc() = "cvnode: neural ordinary differential equations on SUNDIALS CVODES (compiled part)";
  m.attr("__version__") = CVNODE_VERSION;
  cp::bind_errors(m);
  cp::bind_problem(m);
  cp::bind_data(m);
  cp::bind_models(m);
  cp::bind_python_dynamics(m);
  cp::bind_solver(m);
  cp::bind_train(m);
  cp::bind_bench(m);
}
