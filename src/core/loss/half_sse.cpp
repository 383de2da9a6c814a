// half_sse: 0.5 sum (y - v)^2 over the observed entries (a sum).
#include "cvnode/loss.h"

namespace cvnode {
namespace {
class HalfSse final : public ChannelLoss {
 public:
  using ChannelLoss::ChannelLoss;
  std::string name() const override { return "half_sse"; }

 protected:
  double penalty(double y, double v, int, double* d) const override {
    const double r = y - v;
    *d = r;
    return 0.5 * r * r;
  }
};
}  // namespace

std::shared_ptr<const Loss> make_half_sse_loss(const LossSpec& spec, std::shared_ptr<const ObservationMap> map) {
  return std::make_shared<HalfSse>(std::move(map), spec.weight);
}

}  // namespace cvnode
