// How every solve is called from Python: without the GIL (other Python threads run meanwhile),
// one call at a time per solver object, and with the errors of Python dynamics raised as the
// Python exceptions they were.
#pragma once

#include <exception>
#include <mutex>
#include <optional>
#include <utility>

#include "python_dynamics.h"

namespace cvnode::python {

class SolveGuard {
 public:
  explicit SolveGuard(const Dynamics& dynamics) : errors_(dynamics) {}

  // f() runs with the GIL released. Lock order: the GIL is given up before the mutex is taken,
  // so a thread waiting for the mutex never holds the GIL a Python dynamics needs.
  template <class F>
  auto run(F&& f) -> decltype(f()) {
    std::optional<decltype(f())> result;
    std::exception_ptr failure;
    {
      py::gil_scoped_release release;
      std::lock_guard<std::mutex> lock(mutex_);
      errors_.clear();
      try {
        result.emplace(f());
      } catch (...) {
        failure = std::current_exception();
      }
      if (!errors_.empty()) {
        py::gil_scoped_acquire gil;
        errors_.raise_if_any();  // the Python exception takes the place of the SolverError it caused
      }
    }
    if (failure) std::rethrow_exception(failure);
    return std::move(*result);
  }

 private:
  PythonErrors errors_;
  std::mutex mutex_;
};

}  // namespace cvnode::python
