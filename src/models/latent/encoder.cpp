#include "models/latent/encoder.h"

#include <cmath>

#include "core/names.h"
#include "cvnode/errors.h"

namespace cvnode::latent {

Observed observed_rows(const Trajectory& tr) {
  const int C = static_cast<int>(tr.values.cols());
  std::vector<int> keep;
  for (Eigen::Index k = 0; k < tr.times.size(); ++k) {
    bool any = false;
    for (int i = 0; i < C; ++i) any = any || tr.mask.size() == 0 || tr.mask(k, i) != 0;
    if (any) keep.push_back(static_cast<int>(k));
  }
  Observed o;
  o.t0 = tr.t0;
  o.times.resize(keep.size());
  o.values = Matrix::Zero(keep.size(), C);
  o.mask = Matrix::Zero(keep.size(), C);
  for (std::size_t r = 0; r < keep.size(); ++r) {
    o.times[r] = tr.times[keep[r]];
    for (int i = 0; i < C; ++i) {
      const bool seen = tr.mask.size() == 0 || tr.mask(keep[r], i) != 0;
      o.mask(r, i) = seen ? 1 : 0;
      o.values(r, i) = seen ? tr.values(keep[r], i) : 0.0;
    }
  }
  return o;
}

namespace {
const detail::EnumName<EncoderKind> kEncoderKindNames[] = {
    {EncoderKind::Rnn, "rnn"},
    {EncoderKind::OdeRnn, "ode_rnn"}};
}  // namespace

EncoderKind parse_encoder_kind(const std::string& name) {
  return detail::parse_enum(kEncoderKindNames, name, "encoder kind");
}

const char* encoder_kind_name(EncoderKind k) { return detail::enum_name(kEncoderKindNames, k); }

Encoder::Encoder(EncoderSpec spec)
    : spec_(std::move(spec)),
      gru_(2 * spec_.channels + (spec_.kind == EncoderKind::Rnn ? 1 : 0), spec_.hidden),
      head_(DenseSpec{layer_widths(spec_.hidden, spec_.head_hidden, 2 * spec_.latent), spec_.head_activation}) {
  if (spec_.channels < 1 || spec_.latent < 1)
    throw OptionsError("an encoder needs at least one channel and one latent dimension");
  if (spec_.kind == EncoderKind::OdeRnn) {
    MlpSpec m;
    m.layers = layer_widths(spec_.hidden, spec_.ode_hidden, spec_.hidden);
    m.activation = spec_.ode_activation;
    ode_ = std::make_unique<Mlp>(m);
  }
  n_gru_ = gru_.param_size();
  n_head_ = head_.param_size();
  n_ode_ = ode_ ? ode_->param_size() : 0;
}

void Encoder::initialize(std::uint64_t seed, VectorRef theta) const {
  gru_.initialize(seed, theta.segment(0, n_gru_));
  head_.initialize(Init::Glorot, seed + 1, theta.segment(n_gru_, n_head_));
  if (ode_) theta.segment(n_gru_ + n_head_, n_ode_) = ode_->initial_parameters(Init::SmallOutput, seed + 2);
}

Encoder::Run::Run(const Encoder& encoder, const SolverOptions& options) : e_(encoder) {
  if (e_.ode_) path_ = std::make_unique<OdePath>(*e_.ode_, options);
}

void Encoder::Run::encode(ConstVectorRef theta, const Observed& obs, Vector& mu, Vector& logvar) {
  const int C = e_.spec_.channels, H = e_.spec_.hidden, L = e_.spec_.latent;
  const bool rnn = e_.spec_.kind == EncoderKind::Rnn;
  if (obs.rows() < 1) throw DataError("the encoder needs at least one observed time");
  if (obs.values.cols() != C)
    throw OptionsError("the encoder reads " + std::to_string(C) + " channels, the series has " +
                       std::to_string(obs.values.cols()));
  const auto gru_theta = theta.segment(0, e_.n_gru_);
  const auto ode_theta = theta.segment(e_.n_gru_ + e_.n_head_, e_.n_ode_);
  items_.clear();
  Vector h = Vector::Zero(H), x(e_.gru_.input());
  auto evolve = [&](Item& it) {
    it.ode = true;
    it.h_before_ode = h;
    const Vector t = Vector::Constant(1, it.gap);
    h = path_->solve(ode_theta, 0.0, h, t, &nfe_).row(0).transpose();
    it.h_after_ode = h;
  };
  for (int k = obs.rows() - 1; k >= -1; --k) {
    Item it;
    // k = -1: the step from the first observation back to t0, without data.
    it.gap = k == obs.rows() - 1 ? 0.0 : (k >= 0 ? obs.times[k + 1] - obs.times[k] : obs.times[0] - obs.t0);
    if (k < 0 && it.gap <= 0) break;
    if (!rnn && it.gap > 0) evolve(it);
    if (k >= 0 || rnn) {
      it.gru = true;
      x.setZero();
      if (k >= 0) {
        x.head(C) = obs.values.row(k).transpose();
        x.segment(C, C) = obs.mask.row(k).transpose();
      }
      if (rnn) x[2 * C] = it.gap;
      Vector h_new;
      e_.gru_.forward(gru_theta, x, h, it.step, h_new);
      h = std::move(h_new);
    }
    items_.push_back(std::move(it));
  }
  h_final_ = h;
  Matrix out;
  e_.head_.forward(theta.segment(e_.n_gru_, e_.n_head_), h, head_tape_, out);
  mu = out.col(0).head(L);
  logvar = out.col(0).tail(L);
}

void Encoder::Run::backward(ConstVectorRef theta, ConstVectorRef dmu, ConstVectorRef dlogvar, VectorRef dtheta) {
  const int L = e_.spec_.latent;
  Matrix G(2 * L, 1);
  G.col(0) << dmu, dlogvar;
  Matrix dh_m;
  e_.head_.backward(theta.segment(e_.n_gru_, e_.n_head_), head_tape_, G, dtheta.segment(e_.n_gru_, e_.n_head_),
                    &dh_m);
  Vector dh = dh_m.col(0), dprev;
  const auto gru_theta = theta.segment(0, e_.n_gru_);
  const auto ode_theta = theta.segment(e_.n_gru_ + e_.n_head_, e_.n_ode_);
  for (auto it = items_.rbegin(); it != items_.rend(); ++it) {
    if (it->gru) {
      e_.gru_.backward(gru_theta, it->step, dh, dprev, dtheta.segment(0, e_.n_gru_), nullptr);
      dh = std::move(dprev);
    }
    if (it->ode) {
      const Vector t = Vector::Constant(1, it->gap);
      const Matrix states = it->h_after_ode.transpose();
      dh = path_->pullback(ode_theta, 0.0, it->h_before_ode, t, states, dh.transpose(),
                           dtheta.segment(e_.n_gru_ + e_.n_head_, e_.n_ode_), &nfe_);
    }
  }
}

}  // namespace cvnode::latent
