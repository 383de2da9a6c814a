// The paper's RNN baseline for irregular series (Chen et al. 2018, Table 2): an autoregressive
// GRU that reads each observation with the time gap to the next point and predicts that point
// through a dense output layer. Trained by teacher forcing on the masked Gaussian negative
// log-likelihood with a fixed noise scale (a weighted sum of squares); it predicts past its data
// by feeding back its own predictions. Deterministic: no bands.
#pragma once

#include <vector>

#include "cvnode/observations.h"
#include "models/latent/dense.h"
#include "models/latent/gru.h"

namespace cvnode::latent {

struct RnnBaselineSpec {
  int channels = 1;
  int hidden = 25;
  std::vector<int> output_hidden;  // hidden widths of the output layer (empty: linear)
  Activation output_activation = Activation::Tanh;
  Vector noise_std;                // per channel (model units), fixed
};

class RnnBaseline {
 public:
  explicit RnnBaseline(RnnBaselineSpec spec);
  const RnnBaselineSpec& spec() const { return spec_; }
  int param_size() const { return gru_.param_size() + out_.param_size(); }
  Vector initial_parameters(std::uint64_t seed) const;

  // Negative log-likelihood of a series' observed entries after its first observed row, each
  // predicted from the ones before it, times `scale`; with grad, adds its gradient times `scale`.
  // With feed_previous > 0 each step after the first reads, with that probability (draws from
  // `seed`), the model's own prediction of the previous row instead of its observation
  // (scheduled sampling, Bengio et al. 2015): practice for predicting past the data, where it
  // reads nothing else. The gradient then also flows through the prediction that was read.
  double loss(ConstVectorRef params, const Trajectory& series, double scale, Vector* grad,
              double feed_previous = 0, std::uint64_t seed = 0) const;

  // Predictions at `times` (non-decreasing): walking the union of the conditioning series'
  // observed rows and `times` in time order, each point is predicted from the state so far; an
  // observed row is then read as observed, a query time not observed reads its own prediction.
  Matrix predict(ConstVectorRef params, const Trajectory& conditioning, ConstVectorRef times) const;

 private:
  RnnBaselineSpec spec_;
  GruCell gru_;
  Dense out_;
};

}  // namespace cvnode::latent
