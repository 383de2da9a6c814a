// Losses as types. The engines ask a loss only one thing: at observation k of series s, with the
// predicted state z = z(t_k), the term l_k, its derivative dl_k/dz and (accumulated) dl_k/dphi
// for the loss's own parameters phi. How terms are normalised (a sum, or a mean over the
// problem's observed entries) is the loss's reduction(), resolved once by the Problem
// (cvnode/problem.h): no caller passes a scale.
//
// A new loss is one class plus one line in src/core/loss_list.h (see there). Built in:
//   half_sse      0.5 sum (y - v)^2                                    (sum)
//   mse_mean      mean (y - v)^2 over the problem's observed entries   (mean)
//   l1_mean       mean |y - v|  (derivative 0 at y == v)                (mean)
//   gaussian_nll  sum 0.5 ((y - v) / sigma_i)^2 + log sigma_i + 0.5 log(2 pi)   (sum)
//   huber_mean    mean of 0.5 r^2 (|r| <= 1), |r| - 0.5 (beyond), r = y - v     (mean)
// each on the measured channels y (the first state components, or an ObservationMap's output)
// against the series' values v, skipping masked entries, with optional per-channel weights.
// GivenCotangent (c_k^T z(t_k) for given c_k) is the pullback of an outer objective.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "cvnode/dynamics.h"
#include "cvnode/observation_map.h"
#include "cvnode/observations.h"

namespace cvnode {

enum class LossReduction {
  Sum,  // the terms as they are
  Mean  // every term divided by the problem's entries (Loss::entries summed over its series)
};

// Where a term is evaluated: series `series` of the problem, its observation row k.
struct ObservationSite {
  int series;
  Eigen::Index k;
  const Trajectory& trajectory;
};

// Contract for implementations: const and thread-safe (one loss serves all threads); term() may
// allocate (it runs once per observation, never inside a right-hand side).
class Loss {
 public:
  virtual ~Loss() = default;
  virtual std::string name() const = 0;
  virtual LossReduction reduction() const { return LossReduction::Sum; }
  // What a Mean reduction counts in one series: its observed entries by default.
  virtual long entries(const Trajectory& trajectory) const { return trajectory.observed_entries(); }
  // The loss's own parameters phi (an observation map's, a learned noise scale ...).
  virtual int param_size() const { return 0; }
  virtual Vector initial_parameters() const { return Vector::Zero(param_size()); }
  // Empty when the loss can score this series for a state of `state_size` components, else the
  // reason (one sentence naming the field and value).
  virtual std::string validate(int series, const Trajectory& trajectory, int state_size) const = 0;
  // l_k at z = z(t_k); dl_dz (state size) is overwritten, dl_dphi (param_size()) accumulated.
  virtual double term(const ObservationSite& at, ConstVectorRef z, ConstVectorRef phi,
                      VectorRef dl_dz, VectorRef dl_dphi) const = 0;
  // The model's prediction of the measured channels at z (y.size() = the series' channels): for
  // predictions, plots and error metrics. Default: the first y.size() state components.
  virtual void predict(ConstVectorRef z, ConstVectorRef phi, VectorRef y) const { y = z.head(y.size()); }
};

// A loss on measured channels: y = h(z; phi) (an ObservationMap, or the first values.cols()
// state components without one) against the series' values, entry by entry, masked entries
// skipped, each entry's penalty times weight[i] (empty: 1). phi is the map's parameters.
class ChannelLoss : public Loss {
 public:
  ChannelLoss(std::shared_ptr<const ObservationMap> map, Vector weight);
  int param_size() const override;
  Vector initial_parameters() const override;
  std::string validate(int series, const Trajectory& trajectory, int state_size) const override;
  double term(const ObservationSite& at, ConstVectorRef z, ConstVectorRef phi, VectorRef dl_dz,
              VectorRef dl_dphi) const override;
  void predict(ConstVectorRef z, ConstVectorRef phi, VectorRef y) const override;
  const ObservationMap* map() const { return map_.get(); }

 protected:
  // The penalty of one entry at prediction y against value v, and d penalty / dy.
  virtual double penalty(double y, double v, int channel, double* d_dy) const = 0;
  // Empty when the loss's own settings fit `channels` channels (e.g. one sigma each).
  virtual std::string validate_channels(int channels) const { return {}; }

 private:
  std::shared_ptr<const ObservationMap> map_;
  Vector weight_;
};

// l_k = c_k^T z(t_k) with the cotangents c_k given per series (cotangents[s].row(k)): the
// backward pass of an outer objective through the ODE (dL/dz(t_k) computed elsewhere).
class GivenCotangent final : public Loss {
 public:
  explicit GivenCotangent(std::vector<Matrix> cotangents);
  std::string name() const override { return "given_cotangent"; }
  std::string validate(int series, const Trajectory& trajectory, int state_size) const override;
  double term(const ObservationSite& at, ConstVectorRef z, ConstVectorRef phi, VectorRef dl_dz,
              VectorRef dl_dphi) const override;

 private:
  std::vector<Matrix> c_;
};

// The plain description of a built-in loss (the configuration's [loss] section).
struct LossSpec {
  std::string kind = "half_sse";  // a registered loss: loss_kinds()
  // Optional per-channel weights. Species spanning many orders of magnitude (Robertson's y2 ~
  // 1e-5 beside y1 ~ 1) need them, or the small channels never enter the fit (Kim et al.,
  // "Stiff neural ordinary differential equations", 2021): weight_i = 1 / scale_i^2 for the
  // squared losses makes every channel count relative to its own scale.
  Vector weight;
  Vector sigma;  // gaussian_nll: one per channel
};

// The loss `spec` names, on the channels of `map` (null: the first state components).
// Throws OptionsError for an unknown kind, listing the registered ones.
std::shared_ptr<const Loss> make_loss(const LossSpec& spec,
                                      std::shared_ptr<const ObservationMap> map = nullptr);
std::shared_ptr<const Loss> make_loss(const std::string& kind);
std::vector<std::string> loss_kinds();  // registered names, in registration order
// Throws OptionsError unless `kind` is registered (the config checks names before building).
void check_loss_kind(const std::string& kind);

}  // namespace cvnode
