// huber_mean: the mean Huber penalty over the problem's observed entries, 0.5 r^2 for |r| <= 1
// and |r| - 0.5 beyond (r = y - v in the model's units: one standard deviation of the channel
// when the data are normalised), so a few outlying measurements pull the fit linearly, not
// quadratically (PyTorch's smooth_l1_loss / huber_loss with delta = 1). Its derivative is
// continuous; the second derivative jumps at |r| = 1.
#include "cvnode/loss.h"

#include <cmath>

namespace cvnode {
namespace {
class HuberMean final : public ChannelLoss {
 public:
  using ChannelLoss::ChannelLoss;
  std::string name() const override { return "huber_mean"; }
  LossReduction reduction() const override { return LossReduction::Mean; }

 protected:
  double penalty(double y, double v, int, double* d) const override {
    const double r = y - v;
    if (std::abs(r) <= 1) {
      *d = r;
      return 0.5 * r * r;
    }
    *d = r > 0 ? 1.0 : -1.0;
    return std::abs(r) - 0.5;
  }
};
}  // namespace

std::shared_ptr<const Loss> make_huber_mean_loss(const LossSpec& spec, std::shared_ptr<const ObservationMap> map) {
  return std::make_shared<HuberMean>(std::move(map), spec.weight);
}

}  // namespace cvnode
