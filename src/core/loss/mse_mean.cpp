// mse_mean: the mean of (y - v)^2 over the problem's observed entries.
#include "cvnode/loss.h"

namespace cvnode {
namespace {
class MseMean final : public ChannelLoss {
 public:
  using ChannelLoss::ChannelLoss;
  std::string name() const override { return "mse_mean"; }
  LossReduction reduction() const override { return LossReduction::Mean; }

 protected:
  double penalty(double y, double v, int, double* d) const override {
    const double r = y - v;
    *d = 2 * r;
    return r * r;
  }
};
}  // namespace

std::shared_ptr<const Loss> make_mse_mean_loss(const LossSpec& spec, std::shared_ptr<const ObservationMap> map) {
  return std::make_shared<MseMean>(std::move(map), spec.weight);
}

}  // namespace cvnode
