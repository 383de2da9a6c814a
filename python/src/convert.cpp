#include "convert.h"

#include <cmath>
#include <sstream>

#include "app/config.h"

namespace cvnode::python {

namespace {

Exceptions* g_exceptions = nullptr;  // created once by bind_errors; never freed (module lifetime)

py::object new_exception(py::module_& m, const char* name, const char* doc, py::tuple bases) {
  const std::string full = std::string("cvnode.") + name;
  PyObject* type = PyErr_NewExceptionWithDoc(full.c_str(), doc, bases.ptr(), nullptr);
  if (!type) throw py::error_already_set();
  py::object t = py::reinterpret_steal<py::object>(type);
  m.attr(name) = t;
  return t;
}

void raise(const py::object& type, const char* message) {
  PyErr_SetString(type.ptr(), message);
}

std::string shape_of(const py::array& a) {
  std::ostringstream o;
  o << "(";
  for (py::ssize_t i = 0; i < a.ndim(); ++i) o << (i ? ", " : "") << a.shape(i) << (a.ndim() == 1 ? "," : "");
  o << ")";
  return o.str();
}

// obj as a float64 C-ordered array after checking that its dtype is real and numeric.
py::array_t<double, py::array::c_style> real_array(py::handle obj, const std::string& what, Kind kind) {
  if (obj.is_none()) fail(kind, what + ": expected an array of numbers, got None");
  if (py::isinstance<py::array_t<double, py::array::c_style>>(obj))
    return py::reinterpret_borrow<py::array_t<double, py::array::c_style>>(obj);  // the fast path
  py::array a;
  try {
    a = py::module_::import("numpy").attr("asarray")(obj);
  } catch (py::error_already_set& e) {
    // Ragged nested lists and the like: numpy's own reason.
    fail(kind, what + ": not an array of numbers (" + std::string(py::str(e.value())) + ")");
  }
  const char k = a.dtype().kind();
  if (k != 'f' && k != 'i' && k != 'u' && k != 'b') {
    const std::string dtype = py::str(a.dtype());
    if (k == 'c') fail(kind, what + ": expected real numbers, got complex values (dtype " + dtype + ")");
    fail(kind, what + ": expected numbers, got dtype " + dtype);
  }
  return py::array_t<double, py::array::c_style | py::array::forcecast>::ensure(a);
}

std::string number(double v) {
  std::ostringstream o;
  o.precision(17);
  o << v;
  return o.str();
}

void check_finite(const double* p, Eigen::Index rows, Eigen::Index cols, bool matrix, const std::string& what,
                  Kind kind) {
  for (Eigen::Index r = 0; r < rows; ++r)
    for (Eigen::Index c = 0; c < cols; ++c) {
      const double v = p[r * cols + c];
      if (std::isfinite(v)) continue;
      const std::string at = matrix ? "[" + std::to_string(r) + ", " + std::to_string(c) + "]"
                                    : "[" + std::to_string(r) + "]";
      fail(kind, what + at + " = " + number(v) + " is not finite");
    }
}

}  // namespace

const Exceptions& exceptions() { return *g_exceptions; }

void fail(Kind kind, const std::string& message) {
  if (kind == Kind::Data) throw DataError(message);
  throw OptionsError(message);
}

void bind_errors(py::module_& m) {
  auto* e = new Exceptions;
  py::object builtins = py::module_::import("builtins");
  e->error = new_exception(m, "Error", "Base class of every error cvnode raises.",
                           py::make_tuple(builtins.attr("Exception")));
  e->data = new_exception(m, "DataError",
                          "Input data that cannot be used (a file, series, array or value named in the message).",
                          py::make_tuple(e->error, builtins.attr("ValueError")));
  e->config = new_exception(
      m, "ConfigError",
      "An invalid configuration key, solver option, model specification or call argument (theta, z0, times ...).",
      py::make_tuple(e->error, builtins.attr("ValueError")));
  e->solver = new_exception(
      m, "SolverError",
      "A solve that failed (CVODES or Dormand-Prince): attributes flag, flag_name and time_reached.",
      py::make_tuple(e->error, builtins.attr("RuntimeError")));
  g_exceptions = e;

  py::register_exception_translator([](std::exception_ptr p) {
    if (!p) return;
    const Exceptions& x = exceptions();
    try {
      std::rethrow_exception(p);
    } catch (const SolverError& err) {
      py::object exc = x.solver(err.what());
      exc.attr("flag") = err.flag();
      exc.attr("flag_name") = err.flag_name();
      exc.attr("time_reached") = err.time_reached();
      PyErr_SetObject(x.solver.ptr(), exc.ptr());
    } catch (const DataError& err) {
      raise(x.data, err.what());
    } catch (const std::invalid_argument& err) {  // OptionsError, ConfigError, parse_* of names
      raise(x.config, err.what());
    }
  });
}

Vector to_vector(py::handle obj, const std::string& what, Kind kind, Eigen::Index expect_size,
                 bool allow_nonfinite) {
  auto a = real_array(obj, what, kind);
  if (a.ndim() != 1) fail(kind, what + ": expected a 1-D array, got shape " + shape_of(a));
  const Eigen::Index n = a.shape(0);
  if (expect_size >= 0 && n != expect_size)
    fail(kind, what + ": expected " + std::to_string(expect_size) + " entries, got " + std::to_string(n));
  if (!allow_nonfinite) check_finite(a.data(), n, 1, false, what, kind);
  return Eigen::Map<const Vector>(a.data(), n);
}

Matrix to_matrix(py::handle obj, const std::string& what, Kind kind, Eigen::Index expect_rows,
                 Eigen::Index expect_cols, bool allow_nonfinite, bool one_column) {
  auto a = real_array(obj, what, kind);
  Eigen::Index r = 0, c = 0;
  if (a.ndim() == 2) {
    r = a.shape(0), c = a.shape(1);
  } else if (a.ndim() == 1 && one_column) {
    r = a.shape(0), c = 1;
  } else {
    fail(kind, what + ": expected a 2-D array" + (one_column ? std::string(" (or 1-D for one channel)") : "") +
                   ", got shape " + shape_of(a));
  }
  if ((expect_rows >= 0 && r != expect_rows) || (expect_cols >= 0 && c != expect_cols))
    fail(kind, what + ": expected shape (" + (expect_rows >= 0 ? std::to_string(expect_rows) : "any") + ", " +
                   (expect_cols >= 0 ? std::to_string(expect_cols) : "any") + "), got " + shape_of(a));
  if (!allow_nonfinite) check_finite(a.data(), r, c, true, what, kind);
  using RowMajor = Eigen::Matrix<double, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
  return Eigen::Map<const RowMajor>(a.data(), r, c);
}

double to_double(py::handle obj, const std::string& what, Kind kind, bool allow_nonfinite) {
  auto a = real_array(obj, what, kind);
  if (a.ndim() != 0 && !(a.ndim() == 1 && a.shape(0) == 1))
    fail(kind, what + ": expected a number, got an array of shape " + shape_of(a));
  const double v = *a.data();
  if (!allow_nonfinite && !std::isfinite(v)) fail(kind, what + " = " + number(v) + " is not finite");
  return v;
}

std::vector<int> to_ints(py::handle obj, const std::string& what, Kind kind) {
  auto a = real_array(obj, what, kind);
  if (a.ndim() != 1) fail(kind, what + ": expected a list of integers, got shape " + shape_of(a));
  std::vector<int> out(a.shape(0));
  for (py::ssize_t i = 0; i < a.shape(0); ++i) {
    const double v = a.data()[i];
    if (v != std::floor(v) || std::abs(v) > 1e9)
      fail(kind, what + "[" + std::to_string(i) + "] = " + number(v) + " is not an integer");
    out[i] = static_cast<int>(v);
  }
  return out;
}

std::vector<std::string> to_strings(py::handle obj, const std::string& what, Kind kind) {
  if (py::isinstance<py::str>(obj)) fail(kind, what + ": expected a list of strings, got one string");
  std::vector<std::string> out;
  try {
    for (py::handle h : obj) {
      if (!py::isinstance<py::str>(h)) fail(kind, what + ": expected strings, got " + std::string(py::repr(h)));
      out.push_back(h.cast<std::string>());
    }
  } catch (py::error_already_set&) {
    fail(kind, what + ": expected a list of strings, got " + std::string(py::repr(obj)));
  }
  return out;
}

py::array_t<double> to_numpy(const Vector& v) {
  py::array_t<double> a(v.size());
  std::copy(v.data(), v.data() + v.size(), a.mutable_data());
  return a;
}

py::array_t<double> to_numpy(const Matrix& m) {
  py::array_t<double> a({m.rows(), m.cols()});
  using RowMajor = Eigen::Matrix<double, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
  Eigen::Map<RowMajor>(a.mutable_data(), m.rows(), m.cols()) = m;
  return a;
}

py::array_t<double> rows_to_numpy(const std::vector<Vector>& rows, Eigen::Index width) {
  for (const auto& r : rows)
    if (r.size()) width = r.size();
  py::array_t<double> a({static_cast<Eigen::Index>(rows.size()), width});
  double* p = a.mutable_data();
  for (const auto& r : rows) {
    for (Eigen::Index i = 0; i < width; ++i) p[i] = r.size() == width ? r[i] : NAN;
    p += width;
  }
  return a;
}

}  // namespace cvnode::python
