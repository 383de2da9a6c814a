// l1_mean: the mean of |y - v| over the problem's observed entries (derivative 0 at y == v).
#include "cvnode/loss.h"

#include <cmath>

namespace cvnode {
namespace {
class L1Mean final : public ChannelLoss {
 public:
  using ChannelLoss::ChannelLoss;
  std::string name() const override { return "l1_mean"; }
  LossReduction reduction() const override { return LossReduction::Mean; }

 protected:
  double penalty(double y, double v, int, double* d) const override {
    const double r = y - v;
    *d = static_cast<double>((r > 0) - (r < 0));
    return std::abs(r);
  }
};
}  // namespace

std::shared_ptr<const Loss> make_l1_mean_loss(const LossSpec& spec, std::shared_ptr<const ObservationMap> map) {
  return std::make_shared<L1Mean>(std::move(map), spec.weight);
}

}  // namespace cvnode
