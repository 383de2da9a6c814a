#include "cvnode/observations.h"

#include <cmath>
#include <sstream>

namespace cvnode {

int Trajectory::observed_entries() const {
  if (mask.size() == 0) return static_cast<int>(values.size());
  return static_cast<int>((mask.array() != 0).count());
}

double Trajectory::horizon() const {
  double last = times.size() > 0 ? times[times.size() - 1] : t0;
  return std::isnan(t_end) ? last : std::max(last, t_end);
}

Matrix observed_channels(const Matrix& states, const Matrix* readout, Eigen::Index channels) {
  if (readout) return states * readout->transpose();
  return states.leftCols(channels);
}

std::string readout_mismatch(const Matrix& readout, int state_size) {
  if (readout.cols() == state_size) return {};
  return "the readout has " + std::to_string(readout.cols()) + " columns but the state has " +
         std::to_string(state_size) + " components";
}

std::string Trajectory::validate(int n, int channels) const {
  std::ostringstream o;
  o.precision(17);
  if (!std::isfinite(t0)) {
    o << "t0 = " << t0 << " is not finite";
    return o.str();
  }
  if (z0.size() != n) {
    o << "z0 has " << z0.size() << " entries, the state has " << n;
    return o.str();
  }
  if (!z0.allFinite()) return "z0 is not finite";
  if (values.rows() != times.size()) {
    o << "values has " << values.rows() << " rows but there are " << times.size() << " times";
    return o.str();
  }
  if (channels < 0 && values.cols() > n) {
    o << "values has " << values.cols() << " channels, more than the state's " << n;
    return o.str();
  }
  if (channels >= 0 && values.cols() != channels) {
    o << "values has " << values.cols() << " channels but the readout gives " << channels;
    return o.str();
  }
  if (mask.size() > 0 && (mask.rows() != values.rows() || mask.cols() != values.cols())) {
    o << "mask is " << mask.rows() << " x " << mask.cols() << " but values is " << values.rows()
      << " x " << values.cols();
    return o.str();
  }
  for (Eigen::Index k = 0; k < times.size(); ++k) {
    if (!std::isfinite(times[k])) {
      o << "times[" << k << "] = " << times[k] << " is not finite";
      return o.str();
    }
    if (times[k] < t0) {
      o << "times[" << k << "] = " << times[k] << " lies before t0 = " << t0;
      return o.str();
    }
    if (k > 0 && !(times[k] > times[k - 1])) {
      o << "times must be strictly increasing: times[" << k - 1 << "] = " << times[k - 1]
        << ", times[" << k << "] = " << times[k];
      return o.str();
    }
    for (Eigen::Index i = 0; i < values.cols(); ++i) {
      const bool observed = mask.size() == 0 || mask(k, i) != 0;
      if (observed && !std::isfinite(values(k, i))) {
        o << "values(" << k << ", " << i << ") = " << values(k, i)
          << " is not finite and not masked";
        return o.str();
      }
    }
  }
  if (!std::isnan(t_end) && !std::isfinite(t_end)) return "t_end is not finite";
  return {};
}

}  // namespace cvnode
