// gaussian_nll: the negative log-likelihood of independent Gaussian measurement errors with a
// known standard deviation sigma_i per channel, sum 0.5 ((y - v) / sigma_i)^2 + log sigma_i +
// 0.5 log(2 pi) (a sum).
#include "cvnode/loss.h"

#include <cmath>
#include <sstream>

namespace cvnode {
namespace {
class GaussianNll final : public ChannelLoss {
 public:
  GaussianNll(std::shared_ptr<const ObservationMap> map, Vector weight, Vector sigma)
      : ChannelLoss(std::move(map), std::move(weight)), sigma_(std::move(sigma)) {}
  std::string name() const override { return "gaussian_nll"; }

 protected:
  double penalty(double y, double v, int i, double* d) const override {
    const double r = y - v, s = sigma_[i];
    *d = r / (s * s);
    return 0.5 * (r / s) * (r / s) + std::log(s) + 0.5 * std::log(2 * M_PI);
  }
  std::string validate_channels(int channels) const override {
    std::ostringstream o;
    if (sigma_.size() != channels) {
      o << "gaussian_nll needs one sigma per observed channel: got " << sigma_.size() << " for " << channels
        << " channels";
      return o.str();
    }
    for (Eigen::Index i = 0; i < sigma_.size(); ++i)
      if (!(sigma_[i] > 0) || !std::isfinite(sigma_[i])) {
        o << "gaussian_nll sigma[" << i << "] = " << sigma_[i] << " must be finite and > 0";
        return o.str();
      }
    return {};
  }

 private:
  Vector sigma_;
};
}  // namespace

std::shared_ptr<const Loss> make_gaussian_nll_loss(const LossSpec& spec, std::shared_ptr<const ObservationMap> map) {
  return std::make_shared<GaussianNll>(std::move(map), spec.weight, spec.sigma);
}

}  // namespace cvnode
