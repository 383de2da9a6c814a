// A Dynamics whose f (and optionally VJP, Jacobian, JVP) are Python callables: for prototyping a
// model before writing it in C++. Slow by design: every evaluation takes the GIL, copies its
// arguments into new NumPy arrays and runs Python.
//
// A Python exception must never unwind through CVODES (C code). A callback that raises (or
// returns the wrong shape) therefore stores the error, writes NaN, and fails every later call of
// the same solve at once: the solver stops on the non-finite value, and the binding that started
// the solve raises the stored Python exception instead of the SolverError (PythonErrors below).
#pragma once

#include <memory>
#include <mutex>
#include <vector>

#include "convert.h"

namespace cvnode::python {

class PythonDynamics final : public Dynamics {
 public:
  PythonDynamics(int state_size, int param_size, py::object f, py::object vjp, py::object jacobian,
                 py::object jvp, bool smooth);
  ~PythonDynamics() override;

  int state_size() const override { return n_; }
  int param_size() const override { return p_; }
  bool smooth() const override { return smooth_; }
  int workspace_size() const override { return 0; }
  bool has_vjp() const { return !vjp_.is_none(); }

  void rhs(double t, ConstVectorRef z, ConstVectorRef theta, VectorRef f, VectorRef work) const override;
  void vjp(double t, ConstVectorRef z, ConstVectorRef theta, ConstVectorRef a, VectorRef a_dfdz,
           VectorRef a_dfdtheta, VectorRef work) const override;
  void jacobian(double t, ConstVectorRef z, ConstVectorRef theta, MatrixRef J, VectorRef work) const override;
  void jvp(double t, ConstVectorRef z, ConstVectorRef theta, ConstVectorRef v, VectorRef Jv,
           VectorRef work) const override;

  // The stored error (with the GIL held): clear before a solve, raise after it.
  void clear_error() const;
  bool raise_error() const;  // true if there was one (the Python error is then set)

 private:
  // Runs `body` with the GIL; a Python exception or a bad result is stored and false returned.
  template <class Body>
  bool guarded(const char* what, Body&& body) const;
  // Central differences of f (no VJP given): columns of df/dz and df/dtheta.
  void fd_vjp(double t, ConstVectorRef z, ConstVectorRef theta, ConstVectorRef a, VectorRef a_dfdz,
              VectorRef a_dfdtheta) const;

  int n_, p_;
  bool smooth_;
  py::object f_, vjp_, jacobian_, jvp_;
  mutable std::mutex mutex_;
  mutable bool failed_ = false;
  mutable py::object error_type_, error_value_, error_trace_;
};

// The Python dynamics inside a Dynamics: itself, or inside a Hybrid, Stacked or
// TransformedParameters. Empty (and free) for a pure C++ model.
class PythonErrors {
 public:
  explicit PythonErrors(const Dynamics& dynamics);
  bool empty() const { return found_.empty(); }
  void clear() const;
  // With the GIL held: raises (throws py::error_already_set) the first stored Python error.
  void raise_if_any() const;

 private:
  std::vector<const PythonDynamics*> found_;
};

void bind_python_dynamics(py::module_& m);

}  // namespace cvnode::python
