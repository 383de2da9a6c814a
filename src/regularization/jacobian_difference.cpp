// JacobianDifference: d_k = (f(z + d e_k) - f(z - d e_k)) / (2 d), g = (lambda / K) sum_k |d_k|^2,
// dg = (lambda / (K d)) sum_k d_k^T (J(z + d e_k) - J(z - d e_k)): two VJPs per probe.
#include <string>

#include "cvnode/errors.h"
#include "cvnode/regularization.h"

namespace cvnode {

JacobianDifference::JacobianDifference(const Dynamics& dynamics, Options o) : f_(dynamics), o_(o) {
  if (!(o.weight >= 0)) throw OptionsError("jacobian_weight = " + std::to_string(o.weight) + " must be >= 0");
  if (o.probes < 1) throw OptionsError("jacobian probes = " + std::to_string(o.probes) + " must be >= 1");
  if (!(o.step > 0)) throw OptionsError("jacobian difference step = " + std::to_string(o.step) + " must be > 0");
  E_.resize(f_.state_size(), o.probes);
  draw_probes(ProbeNoise::Rademacher, o.seed, Eigen::Map<Vector>(E_.data(), E_.size()));
}

// Workspace: z+, z-, f+, f- (n each), a theta-sized scratch, then the dynamics' own.
int JacobianDifference::workspace_size() const { return 4 * f_.state_size() + f_.param_size() + f_.workspace_size(); }

namespace {
struct Parts {
  VectorRef zp, zm, fp, fm, dtheta, inner;
};
Parts split(VectorRef w, int n, int P) {
  return {w.segment(0, n), w.segment(n, n), w.segment(2 * n, n), w.segment(3 * n, n), w.segment(4 * n, P),
          w.tail(w.size() - 4 * n - P)};
}
}  // namespace

double JacobianDifference::value(double t, ConstVectorRef z, ConstVectorRef theta, VectorRef work) const {
  const int n = f_.state_size();
  Parts p = split(work, n, f_.param_size());
  const double d = o_.step;
  double sum = 0;
  for (int k = 0; k < o_.probes; ++k) {
    p.zp = z + d * E_.col(k);
    p.zm = z - d * E_.col(k);
    f_.rhs(t, p.zp, theta, p.fp, p.inner);
    f_.rhs(t, p.zm, theta, p.fm, p.inner);
    sum += ((p.fp - p.fm) / (2 * d)).squaredNorm();
  }
  return o_.weight / o_.probes * sum;
}

void JacobianDifference::gradient(double t, ConstVectorRef z, ConstVectorRef theta, VectorRef dg_dz,
                                  VectorRef dg_dtheta, VectorRef work) const {
  const int n = f_.state_size();
  Parts p = split(work, n, f_.param_size());
  const double d = o_.step;
  const bool want_theta = dg_dtheta.size() > 0;
  dg_dz.setZero();
  if (want_theta) dg_dtheta.setZero();
  for (int k = 0; k < o_.probes; ++k) {
    p.zp = z + d * E_.col(k);
    p.zm = z - d * E_.col(k);
    f_.rhs(t, p.zp, theta, p.fp, p.inner);
    f_.rhs(t, p.zm, theta, p.fm, p.inner);
    // a = dg/dd_k / (2 d) = (lambda / K) 2 d_k / (2 d); fp is free after this line
    p.fp = (o_.weight / (o_.probes * d)) * ((p.fp - p.fm) / (2 * d));
    for (const double sign : {1.0, -1.0}) {
      f_.vjp(t, sign > 0 ? p.zp : p.zm, theta, p.fp, p.fm, p.dtheta, p.inner);
      dg_dz += sign * p.fm;
      if (want_theta) dg_dtheta += sign * p.dtheta;
    }
  }
}

}  // namespace cvnode
