// One series to fit: its initial condition and its measurements at irregular times.
#pragma once

#include <limits>
#include <string>

#include "cvnode/dynamics.h"

namespace cvnode {

struct Trajectory {
  double t0 = 0;
  Vector z0;
  // Strictly increasing observation times, each >= t0. An observation at t0 compares z0 itself.
  Vector times;
  // values(k, i): measurement of channel i at times[k]. Without a readout the channels are the
  // first values.cols() state components (the others, e.g. augmented dimensions, are unobserved);
  // with a readout C (Solver::gradient) channel i is (C z)_i.
  Matrix values;
  // Optional, same shape as values: 1 = observed, 0 = missing. Empty means all observed.
  Matrix mask;
  // End of the running-cost integral; NaN means the last observation time (or t0 if none).
  double t_end = std::numeric_limits<double>::quiet_NaN();

  int observed_entries() const;  // entries that enter the loss
  double horizon() const;        // max(t_end, last time)
  // Empty when consistent with a state of size n, else a readable reason. `channels` >= 0 is the
  // number of measured channels a readout maps the state onto (values must have that many
  // columns); -1 means the plain map: the first values.cols() <= n state components.
  std::string validate(int state_size, int channels = -1) const;
};

// The channels the loss compares with a series' values: C z(t_k) for the rows of `states` with
// a readout C (channels x state), else the first `channels` state components.
Matrix observed_channels(const Matrix& states, const Matrix* readout, Eigen::Index channels);
// Empty when a readout fits a state of `state_size` components, else the reason.
std::string readout_mismatch(const Matrix& readout, int state_size);

}  // namespace cvnode
