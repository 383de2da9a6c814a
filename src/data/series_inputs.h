// Static covariates and control knots of one series from the cells of its CSV records, shared by
// the rows import and the pharmacometric event layout, so that both judge the cells alike.
#pragma once

#include <string>
#include <vector>

#include "cvnode/dataset.h"

namespace cvnode::detail {

// The covariate and control cells of one record; NaN = an empty cell.
struct InputCells {
  long line = 0;
  double time = 0;
  std::vector<double> covariates, controls;
};

// Sets s.covariates (each the one value its non-empty cells share) and s.control_times /
// s.control_values (a knot at every time where a control cell is not empty; a knot without a
// cell for some control keeps that control's previous value) from `records`, sorted by time.
// Throws DataError "PATH:LINE: WHO: ..." for a covariate that changes or never has a value, a
// control with two values at one time or without a value at its first knot.
void fill_inputs(const std::vector<InputCells>& records, const std::vector<std::string>& covariate_names,
                 const std::vector<std::string>& control_names, const std::string& path, const std::string& who,
                 Series& s);

}  // namespace cvnode::detail
