// The loss interface's shared parts: ChannelLoss's entry loop, the given-cotangent loss, and the
// registry of named losses (src/core/loss_list.h).
#include "cvnode/loss.h"

#include <cmath>
#include <sstream>

#include "core/names.h"
#include "cvnode/errors.h"

namespace cvnode {

ChannelLoss::ChannelLoss(std::shared_ptr<const ObservationMap> map, Vector weight)
    : map_(std::move(map)), weight_(std::move(weight)) {}

int ChannelLoss::param_size() const { return map_ ? map_->param_size() : 0; }

Vector ChannelLoss::initial_parameters() const { return map_ ? map_->initial_parameters() : Vector(); }

std::string ChannelLoss::validate(int, const Trajectory& tr, int n) const {
  std::ostringstream o;
  const auto channels = tr.values.cols();
  if (map_) {
    if (std::string why = map_->validate(n); !why.empty()) return why;
    if (channels != map_->channels()) {
      o << "values has " << channels << " channels but the readout gives " << map_->channels();
      return o.str();
    }
  } else if (channels > n) {
    o << "values has " << channels << " channels, more than the state's " << n;
    return o.str();
  }
  if (weight_.size() > 0) {
    if (weight_.size() != channels) {
      o << "loss weight needs one entry per observed channel: got " << weight_.size() << " for " << channels
        << " channels";
      return o.str();
    }
    for (Eigen::Index i = 0; i < weight_.size(); ++i)
      if (!(weight_[i] >= 0) || !std::isfinite(weight_[i])) {
        o << "loss weight[" << i << "] = " << weight_[i] << " must be finite and >= 0";
        return o.str();
      }
  }
  return validate_channels(static_cast<int>(channels));
}

double ChannelLoss::term(const ObservationSite& at, ConstVectorRef z, ConstVectorRef phi, VectorRef dl_dz,
                         VectorRef dl_dphi) const {
  const Trajectory& tr = at.trajectory;
  const Eigen::Index m = tr.values.cols();
  Vector y(m), dy = Vector::Zero(m);
  predict(z, phi, y);
  const bool masked = tr.mask.size() > 0;
  double l = 0;
  for (Eigen::Index i = 0; i < m; ++i) {
    if (masked && tr.mask(at.k, i) == 0) continue;
    double d = 0;
    const double p = penalty(y[i], tr.values(at.k, i), static_cast<int>(i), &d);
    const double w = weight_.size() > 0 ? weight_[i] : 1.0;
    l += w * p;
    dy[i] = w * d;
  }
  if (map_) {
    map_->pullback(z, phi, dy, dl_dz, dl_dphi);
  } else {
    dl_dz.setZero();
    dl_dz.head(m) = dy;
  }
  return l;
}

void ChannelLoss::predict(ConstVectorRef z, ConstVectorRef phi, VectorRef y) const {
  if (map_) map_->apply(z, phi, y);
  else y = z.head(y.size());
}

GivenCotangent::GivenCotangent(std::vector<Matrix> cotangents) : c_(std::move(cotangents)) {}

std::string GivenCotangent::validate(int series, const Trajectory& tr, int n) const {
  const std::string who = "given cotangents of series " + std::to_string(series);
  if (series < 0 || static_cast<std::size_t>(series) >= c_.size()) return who + ": none given";
  const Matrix& c = c_[static_cast<std::size_t>(series)];
  if (c.rows() != tr.times.size() || c.cols() != n)
    return who + " are " + std::to_string(c.rows()) + " x " + std::to_string(c.cols()) + ", the series needs " +
           std::to_string(tr.times.size()) + " x " + std::to_string(n) + " (observation times x state)";
  if (!c.allFinite()) return who + " are not finite";
  return {};
}

double GivenCotangent::term(const ObservationSite& at, ConstVectorRef z, ConstVectorRef, VectorRef dl_dz,
                            VectorRef) const {
  dl_dz = c_[static_cast<std::size_t>(at.series)].row(at.k).transpose();
  return dl_dz.dot(z);
}

// ---- the registry: src/core/loss_list.h ----
using LossFactory = std::shared_ptr<const Loss> (*)(const LossSpec&, std::shared_ptr<const ObservationMap>);

#define CVNODE_LOSS(name, factory) \
  std::shared_ptr<const Loss> factory(const LossSpec&, std::shared_ptr<const ObservationMap>);
#include "core/loss_list.h"
#undef CVNODE_LOSS

namespace {
const detail::Registry<LossFactory>& registry() {
  static const detail::Registry<LossFactory> r("loss", {
#define CVNODE_LOSS(name, factory) {name, &factory},
#include "core/loss_list.h"
#undef CVNODE_LOSS
  });
  return r;
}
}  // namespace

std::shared_ptr<const Loss> make_loss(const LossSpec& spec, std::shared_ptr<const ObservationMap> map) {
  return registry().at(spec.kind)(spec, std::move(map));
}

std::shared_ptr<const Loss> make_loss(const std::string& kind) {
  LossSpec spec;
  spec.kind = kind;
  return make_loss(spec);
}

std::vector<std::string> loss_kinds() { return registry().names(); }

void check_loss_kind(const std::string& kind) { registry().at(kind); }

}  // namespace cvnode
