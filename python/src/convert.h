// NumPy <-> Eigen for the bindings, with one readable message per bad argument (its name, the
// shape or dtype expected and the one given), and the Python exception types of the module.
#pragma once

#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <string>
#include <vector>

#include "cvnode/dynamics.h"
#include "cvnode/errors.h"

namespace cvnode::python {

namespace py = pybind11;

// The module's exception classes (created in errors.cpp): cvnode.Error and its subclasses.
struct Exceptions {
  py::object error, data, config, solver;
};
const Exceptions& exceptions();
void bind_errors(py::module_& m);

// Which Python exception a bad argument raises: DataError for measurements and series,
// ConfigError for parameters, options and model specifications.
enum class Kind { Data, Config };
[[noreturn]] void fail(Kind kind, const std::string& message);

// A real array of any numeric dtype (bool, integers, floats) as float64. `what` names the
// argument in messages. expect_* < 0: any size. allow_nonfinite: NaN/Inf accepted (masked
// values); otherwise the first non-finite entry is reported.
Vector to_vector(py::handle obj, const std::string& what, Kind kind, Eigen::Index expect_size = -1,
                 bool allow_nonfinite = false);
// A 2-D array (rows x cols). one_column: a 1-D array is taken as a single column.
Matrix to_matrix(py::handle obj, const std::string& what, Kind kind, Eigen::Index expect_rows = -1,
                 Eigen::Index expect_cols = -1, bool allow_nonfinite = false, bool one_column = false);
double to_double(py::handle obj, const std::string& what, Kind kind, bool allow_nonfinite = false);
std::vector<int> to_ints(py::handle obj, const std::string& what, Kind kind);
std::vector<std::string> to_strings(py::handle obj, const std::string& what, Kind kind);

// Copies out (NumPy owns its memory; the C++ result may go away).
py::array_t<double> to_numpy(const Vector& v);
py::array_t<double> to_numpy(const Matrix& m);  // C order, rows x cols
// Vectors of equal length as the rows of one array; an empty vector (a failed series) is a row of
// NaN. `width` is used when every vector is empty.
py::array_t<double> rows_to_numpy(const std::vector<Vector>& rows, Eigen::Index width);

}  // namespace cvnode::python
