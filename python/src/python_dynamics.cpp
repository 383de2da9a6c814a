#include "python_dynamics.h"

#include <cmath>
#include <limits>

#include "cvnode/hybrid.h"
#include "cvnode/parameter_transform.h"
#include "cvnode/stacked.h"

namespace cvnode::python {

namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

// Central-difference step for x: cbrt(machine epsilon) relative, the optimum for a second-order
// formula (truncation h^2 against rounding eps/h).
double fd_step(double x) { return 6.0554544523933395e-06 * std::max(1.0, std::abs(x)); }

}  // namespace

PythonDynamics::PythonDynamics(int state_size, int param_size, py::object f, py::object vjp, py::object jacobian,
                               py::object jvp, bool smooth)
    : n_(state_size), p_(param_size), smooth_(smooth), f_(std::move(f)), vjp_(std::move(vjp)),
      jacobian_(std::move(jacobian)), jvp_(std::move(jvp)) {
  if (n_ < 1) fail(Kind::Config, "PythonDynamics: state_size = " + std::to_string(n_) + " must be >= 1");
  if (p_ < 0) fail(Kind::Config, "PythonDynamics: param_size = " + std::to_string(p_) + " must be >= 0");
  auto check = [](const py::object& o, const char* name, bool required) {
    if (o.is_none() && !required) return;
    if (!PyCallable_Check(o.ptr()))
      fail(Kind::Config, std::string("PythonDynamics: ") + name + " must be callable, got " +
                             std::string(py::str(o.get_type())));
  };
  check(f_, "f", true);
  check(vjp_, "vjp", false);
  check(jacobian_, "jacobian", false);
  check(jvp_, "jvp", false);
}

PythonDynamics::~PythonDynamics() {
  // The callables and a stored error are Python objects: release them with the GIL.
  if (!Py_IsInitialized()) return;
  py::gil_scoped_acquire gil;
  f_ = vjp_ = jacobian_ = jvp_ = py::object();
  error_type_ = error_value_ = error_trace_ = py::object();
}

template <class Body>
bool PythonDynamics::guarded(const char* what, Body&& body) const {
  // Everything below, the failure flag included, is guarded by the GIL alone: a second mutex
  // would deadlock against a thread that holds the GIL and calls this dynamics directly.
  py::gil_scoped_acquire gil;
  if (failed_) return false;  // an earlier callback of this solve failed: stop at once
  std::string note;
  try {
    body();
    return true;
  } catch (py::error_already_set& e) {
    error_type_ = e.type();
    error_value_ = e.value();
    error_trace_ = e.trace();
  } catch (const std::exception& e) {  // a result of the wrong shape or type (convert.h)
    error_type_ = exceptions().config;
    error_value_ = exceptions().config(std::string("PythonDynamics: ") + e.what());
    error_trace_ = py::none();
  }
  failed_ = true;
  // Where it happened, as a note on the exception (shown under the traceback).
  if (error_value_ && py::hasattr(error_value_, "add_note"))
    error_value_.attr("add_note")(std::string("raised in the PythonDynamics ") + what + " callback");
  return false;
}

void PythonDynamics::clear_error() const {
  failed_ = false;
  error_type_ = error_value_ = error_trace_ = py::object();
}

bool PythonDynamics::raise_error() const {
  if (!failed_) return false;
  failed_ = false;
  PyErr_Restore(error_type_.release().ptr(), error_value_.release().ptr(),
                error_trace_.is_none() ? nullptr : error_trace_.release().ptr());
  error_trace_ = py::object();
  return true;
}

void PythonDynamics::rhs(double t, ConstVectorRef z, ConstVectorRef theta, VectorRef f, VectorRef) const {
  const bool ok = guarded("f", [&] {
    py::object r = f_(t, to_numpy(Vector(z)), to_numpy(Vector(theta)));
    f = to_vector(r, "f(t, z, theta) returned", Kind::Config, n_, true);
  });
  if (!ok) f.setConstant(kNaN);
}

void PythonDynamics::fd_vjp(double t, ConstVectorRef z, ConstVectorRef theta, ConstVectorRef a, VectorRef a_dfdz,
                            VectorRef a_dfdtheta) const {
  auto eval = [&](const Vector& zz, const Vector& th) {
    return to_vector(f_(t, to_numpy(zz), to_numpy(th)), "f(t, z, theta) returned", Kind::Config, n_, true);
  };
  Vector zz = z, th = theta;
  // a^T (df/dx_j) for x = zz or th, by perturbing x_j in place.
  auto central = [&](Vector& x, Eigen::Index j) {
    const double h = fd_step(x[j]), keep = x[j];
    x[j] = keep + h;
    const Vector up = eval(zz, th);
    x[j] = keep - h;
    const Vector down = eval(zz, th);
    x[j] = keep;
    return a.dot(up - down) / (2 * h);
  };
  for (int j = 0; j < n_; ++j) a_dfdz[j] = central(zz, j);
  for (Eigen::Index j = 0; j < a_dfdtheta.size(); ++j) a_dfdtheta[j] = central(th, j);
}

void PythonDynamics::vjp(double t, ConstVectorRef z, ConstVectorRef theta, ConstVectorRef a, VectorRef a_dfdz,
                         VectorRef a_dfdtheta, VectorRef) const {
  const bool ok = guarded("vjp", [&] {
    if (vjp_.is_none()) return fd_vjp(t, z, theta, a, a_dfdz, a_dfdtheta);
    py::object r = vjp_(t, to_numpy(Vector(z)), to_numpy(Vector(theta)), to_numpy(Vector(a)));
    if (!py::isinstance<py::tuple>(r) && !py::isinstance<py::list>(r))
      fail(Kind::Config, "vjp(t, z, theta, a) must return a pair (a_dfdz, a_dfdtheta), got " +
                             std::string(py::str(r.get_type())));
    py::tuple pair = r.cast<py::tuple>();
    if (pair.size() != 2)
      fail(Kind::Config, "vjp(t, z, theta, a) must return a pair (a_dfdz, a_dfdtheta), got " +
                             std::to_string(pair.size()) + " items");
    a_dfdz = to_vector(pair[0], "vjp(t, z, theta, a)[0] (a_dfdz)", Kind::Config, n_, true);
    if (a_dfdtheta.size() > 0)
      a_dfdtheta = to_vector(pair[1], "vjp(t, z, theta, a)[1] (a_dfdtheta)", Kind::Config, p_, true);
  });
  if (!ok) {
    a_dfdz.setConstant(kNaN);
    a_dfdtheta.setConstant(kNaN);
  }
}

void PythonDynamics::jacobian(double t, ConstVectorRef z, ConstVectorRef theta, MatrixRef J, VectorRef) const {
  const bool ok = guarded("jacobian", [&] {
    if (!jacobian_.is_none()) {
      J = to_matrix(jacobian_(t, to_numpy(Vector(z)), to_numpy(Vector(theta))), "jacobian(t, z, theta) returned",
                    Kind::Config, n_, n_, true);
      return;
    }
    // Row i of J is e_i^T J: one VJP (the callable's, or differences of f) per row.
    Vector e = Vector::Zero(n_), row(n_), none(0);
    for (int i = 0; i < n_; ++i) {
      e.setZero();
      e[i] = 1;
      if (vjp_.is_none()) {
        fd_vjp(t, z, theta, e, row, none);
      } else {
        py::tuple pair = vjp_(t, to_numpy(Vector(z)), to_numpy(Vector(theta)), to_numpy(e)).cast<py::tuple>();
        row = to_vector(pair[0], "vjp(t, z, theta, a)[0] (a_dfdz)", Kind::Config, n_, true);
      }
      J.row(i) = row.transpose();
    }
  });
  if (!ok) J.setConstant(kNaN);
}

void PythonDynamics::jvp(double t, ConstVectorRef z, ConstVectorRef theta, ConstVectorRef v, VectorRef Jv,
                         VectorRef work) const {
  if (jvp_.is_none()) {
    Matrix J(n_, n_);
    jacobian(t, z, theta, J, work);
    Jv = J * v;
    return;
  }
  const bool ok = guarded("jvp", [&] {
    Jv = to_vector(jvp_(t, to_numpy(Vector(z)), to_numpy(Vector(theta)), to_numpy(Vector(v))),
                   "jvp(t, z, theta, v) returned", Kind::Config, n_, true);
  });
  if (!ok) Jv.setConstant(kNaN);
}

namespace {

void collect(const Dynamics* d, std::vector<const PythonDynamics*>& out) {
  if (!d) return;
  if (auto* p = dynamic_cast<const PythonDynamics*>(d)) {
    out.push_back(p);
  } else if (auto* h = dynamic_cast<const Hybrid*>(d)) {
    collect(h->physics(), out);
    collect(h->network(), out);
  } else if (auto* s = dynamic_cast<const Stacked*>(d)) {
    collect(&s->inner(), out);
  } else if (auto* tp = dynamic_cast<const TransformedParameters*>(d)) {
    collect(&tp->inner(), out);
  }
}

}  // namespace

PythonErrors::PythonErrors(const Dynamics& dynamics) { collect(&dynamics, found_); }

void PythonErrors::clear() const {
  if (found_.empty()) return;
  py::gil_scoped_acquire gil;
  for (auto* p : found_) p->clear_error();
}

void PythonErrors::raise_if_any() const {
  for (auto* p : found_)
    if (p->raise_error()) throw py::error_already_set();
}

void bind_python_dynamics(py::module_& m) {
  py::class_<PythonDynamics, Dynamics, std::shared_ptr<PythonDynamics>>(
      m, "PythonDynamics",
      "dz/dt = f(t, z, theta) written in Python, for prototyping (slow: every evaluation runs Python under the "
      "GIL; the C++ Dynamics are the fast path). f(t, z, theta) -> array(state_size); optional "
      "vjp(t, z, theta, a) -> (a^T df/dz, a^T df/dtheta) (else central differences of f: gradients accurate to "
      "about 1e-8 relative), jacobian(t, z, theta) -> (n, n) and jvp(t, z, theta, v) -> J v (else from the VJP). "
      "An exception raised in a callback stops the solve and is re-raised by the call that started it.")
      .def(py::init([](int state_size, int param_size, py::object f, py::object vjp, py::object jacobian,
                       py::object jvp, bool smooth) {
             return std::make_shared<PythonDynamics>(state_size, param_size, std::move(f), std::move(vjp),
                                                     std::move(jacobian), std::move(jvp), smooth);
           }),
           py::arg("state_size"), py::arg("param_size"), py::arg("f"), py::arg("vjp") = py::none(),
           py::arg("jacobian") = py::none(), py::arg("jvp") = py::none(), py::arg("smooth") = false)
      .def_property_readonly("has_vjp", &PythonDynamics::has_vjp);
}

}  // namespace cvnode::python
