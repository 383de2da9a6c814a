// Exceptions cvnode throws. Every message is one readable sentence naming what failed.
#pragma once

#include <stdexcept>
#include <string>

namespace cvnode {

// An invalid SolverOptions field, model specification or call argument.
class OptionsError : public std::invalid_argument {
 public:
  using std::invalid_argument::invalid_argument;
};

// A CVODES integration that failed: too much work, repeated error-test or convergence failures,
// a non-finite right-hand side... Carries the CVODES flag, its name and the time reached.
class SolverError : public std::runtime_error {
 public:
  SolverError(const std::string& where, int flag, const std::string& flag_name, double t_reached,
              const std::string& detail);
  int flag() const { return flag_; }
  const std::string& flag_name() const { return flag_name_; }
  double time_reached() const { return t_; }

 private:
  int flag_;
  std::string flag_name_;
  double t_;
};

// Input data that cannot be used: named file, field and value in the message.
class DataError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

}  // namespace cvnode
