#include "models/latent/elbo.h"

#include <algorithm>
#include <cmath>

namespace cvnode::latent {

double gaussian_loglik(const Matrix& pred, const Matrix& values, const Matrix& mask, ConstVectorRef log_sigma,
                       Matrix& dpred, Vector* dlog_sigma) {
  const double half_log_2pi = 0.5 * std::log(2 * M_PI);
  dpred = Matrix::Zero(pred.rows(), pred.cols());
  double ll = 0;
  for (Eigen::Index i = 0; i < pred.cols(); ++i) {
    const double inv_var = std::exp(-2 * log_sigma[i]);
    for (Eigen::Index k = 0; k < pred.rows(); ++k) {
      if (mask.size() && mask(k, i) == 0) continue;
      const double r = values(k, i) - pred(k, i), q = r * r * inv_var;
      ll += -0.5 * q - log_sigma[i] - half_log_2pi;
      dpred(k, i) = r * inv_var;
      if (dlog_sigma) (*dlog_sigma)[i] += q - 1;
    }
  }
  return ll;
}

double kl_standard_normal(ConstVectorRef mu, ConstVectorRef logvar, Vector& dmu, Vector& dlogvar) {
  const Eigen::ArrayXd var = logvar.array().exp();
  dmu = mu;
  dlogvar = (0.5 * (var - 1)).matrix();
  return 0.5 * (var + mu.array().square() - 1 - logvar.array()).sum();
}

double log_normal(ConstVectorRef z, ConstVectorRef mu, ConstVectorRef logvar) {
  return (-0.5 * (z - mu).array().square() * (-logvar.array()).exp() - 0.5 * logvar.array() -
          0.5 * std::log(2 * M_PI))
      .sum();
}

double log_mean_exp(const std::vector<double>& a, std::vector<double>& w) {
  const double m = *std::max_element(a.begin(), a.end());
  double s = 0;
  w.resize(a.size());
  for (std::size_t k = 0; k < a.size(); ++k) s += (w[k] = std::exp(a[k] - m));
  for (double& x : w) x /= s;
  return m + std::log(s / static_cast<double>(a.size()));
}

}  // namespace cvnode::latent
