#include "models/latent/rnn_baseline.h"

#include <cmath>

#include "cvnode/errors.h"
#include "models/latent/elbo.h"
#include "models/latent/encoder.h"
#include "core/random.h"

namespace cvnode::latent {

RnnBaseline::RnnBaseline(RnnBaselineSpec spec)
    : spec_(std::move(spec)),
      gru_(2 * spec_.channels + 1, spec_.hidden),
      out_(DenseSpec{layer_widths(spec_.hidden, spec_.output_hidden, spec_.channels), spec_.output_activation}) {
  if (spec_.noise_std.size() != spec_.channels || !(spec_.noise_std.array() > 0).all())
    throw OptionsError("the RNN baseline needs one noise standard deviation > 0 per channel");
}

Vector RnnBaseline::initial_parameters(std::uint64_t seed) const {
  Vector p(param_size());
  gru_.initialize(seed, p.head(gru_.param_size()));
  out_.initialize(Init::Glorot, seed + 1, p.tail(out_.param_size()));
  return p;
}

double RnnBaseline::loss(ConstVectorRef params, const Trajectory& series, double scale, Vector* grad,
                         double feed_previous, std::uint64_t seed) const {
  const int C = spec_.channels, H = spec_.hidden, G = gru_.param_size();
  const Observed obs = observed_rows(series);
  const int T = obs.rows();
  if (T < 1) throw DataError("the RNN baseline needs at least one observed time");
  const auto th_gru = params.head(G);
  const auto th_out = params.tail(out_.param_size());
  // Step r reads row r - 1 (nothing for r = 0; its own prediction of row r - 1 when fed) with
  // the gap to row r, and predicts row r.
  std::vector<GruCell::Step> steps(T);
  std::vector<Dense::Tape> tapes(T);
  std::vector<char> fed(T, 0);
  Matrix pred(C, T), y;
  detail::Rng rng(seed);
  Vector h = Vector::Zero(H), x(2 * C + 1), h_new;
  for (int r = 0; r < T; ++r) {
    x.setZero();
    if (r > 0) {
      fed[r] = r > 1 && feed_previous > 0 && rng.uniform() < feed_previous;
      x.head(C) = fed[r] ? Vector(pred.col(r - 1)) : Vector(obs.values.row(r - 1).transpose());
      x.segment(C, C) = fed[r] ? Vector::Ones(C) : Vector(obs.mask.row(r - 1).transpose());
    }
    x[2 * C] = obs.times[r] - (r > 0 ? obs.times[r - 1] : obs.t0);
    gru_.forward(th_gru, x, h, steps[r], h_new);
    h = h_new;
    out_.forward(th_out, h, tapes[r], y);
    pred.col(r) = y.col(0);
  }
  // The first observation has nothing before it to be predicted from: it is read, not scored.
  Matrix dpred, mask = obs.mask;
  mask.row(0).setZero();
  const Vector log_sigma = spec_.noise_std.array().log().matrix();
  const double nll = -gaussian_loglik(pred.transpose(), obs.values, mask, log_sigma, dpred, nullptr);
  if (grad) {
    Vector g = Vector::Zero(param_size());
    Matrix dP = -scale * dpred.transpose(), dh_out;  // C x T: dLoss/dpred, plus what fed steps add
    Vector dh = Vector::Zero(H), dprev, dx;
    for (int r = T - 1; r >= 0; --r) {
      out_.backward(th_out, tapes[r], dP.col(r), g.tail(out_.param_size()), &dh_out);
      dh += dh_out.col(0);
      gru_.backward(th_gru, steps[r], dh, dprev, g.head(G), fed[r] ? &dx : nullptr);
      if (fed[r]) dP.col(r - 1) += dx.head(C);
      dh = dprev;
    }
    *grad += g;
  }
  return scale * nll;
}

Matrix RnnBaseline::predict(ConstVectorRef params, const Trajectory& conditioning, ConstVectorRef times) const {
  const int C = spec_.channels, H = spec_.hidden, G = gru_.param_size();
  const Observed obs = observed_rows(conditioning);
  const auto th_gru = params.head(G);
  const auto th_out = params.tail(out_.param_size());
  Matrix out(times.size(), C);
  Vector h = Vector::Zero(H), x = Vector::Zero(2 * C + 1), h_new;
  GruCell::Step step;
  Dense::Tape tape;
  Matrix y;
  double t_prev = obs.t0;
  int r = 0, q = 0;
  // Merge: an observed row at the same time as a query answers the query first, then is read.
  while (r < obs.rows() || q < times.size()) {
    const bool query = q < times.size() && (r >= obs.rows() || times[q] <= obs.times[r]);
    const double t = query ? times[q] : obs.times[r];
    x[2 * C] = t - t_prev;
    gru_.forward(th_gru, x, h, step, h_new);
    out_.forward(th_out, h_new, tape, y);
    const bool observed_here = r < obs.rows() && obs.times[r] == t;
    if (query) out.row(q++) = y.col(0).transpose();
    // The next input: the observation (with its mask) where there is one, else the prediction.
    if (observed_here) {
      x.head(C) = obs.values.row(r).transpose();
      x.segment(C, C) = obs.mask.row(r).transpose();
      ++r;
    } else {
      x.head(C) = y.col(0);
      x.segment(C, C).setOnes();
    }
    h = h_new;
    t_prev = t;
  }
  return out;
}

}  // namespace cvnode::latent
