#include "cvnode/errors.h"

#include <sstream>

namespace cvnode {

namespace {
std::string solver_message(const std::string& where, int flag, const std::string& name, double t,
                           const std::string& detail) {
  std::ostringstream o;
  o.precision(10);
  o << where << " failed with " << name << " (flag " << flag << ") at t = " << t;
  if (!detail.empty()) o << ": " << detail;
  return o.str();
}
}  // namespace

SolverError::SolverError(const std::string& where, int flag, const std::string& flag_name,
                         double t_reached, const std::string& detail)
    : std::runtime_error(solver_message(where, flag, flag_name, t_reached, detail)),
      flag_(flag),
      flag_name_(flag_name),
      t_(t_reached) {}

}  // namespace cvnode
