// Constrained physical parameters: the optimizer works on an unconstrained vector q, the wrapped
// Dynamics sees p = T(q) elementwise. Typical use: rate constants that must stay positive and
// span orders of magnitude are optimised as q = log p.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "cvnode/dynamics.h"

namespace cvnode {

enum class ParamTransform {
  Identity,   // p = q; no constraint
  Log,        // p = exp(q): p in (0, inf). q beyond ~709 overflows exp; |q| < 700 is safe.
  Bounded,    // p = lower + (upper - lower) * sigmoid(q): p in (lower, upper), finite bounds
  LogBounded  // log p = log lower + (log upper - log lower) * sigmoid(q): 0 < lower < p < upper,
              // uniform sensitivity across orders of magnitude (rates from 1e-2 to 1e8, say)
};

struct ParamBound {
  ParamTransform kind = ParamTransform::Identity;
  double lower = 0;  // used by Bounded and LogBounded only
  double upper = 0;

  // Physical value for an internal one, dp/dq, and the inverse (throws OptionsError when p lies
  // outside the open domain, e.g. p <= 0 for Log).
  double to_physical(double q) const;
  double derivative(double q) const;
  double to_internal(double p) const;
  std::string validate() const;  // empty when valid

  static ParamBound identity() { return {}; }
  static ParamBound log() { return {ParamTransform::Log, 0, 0}; }
  static ParamBound bounded(double lo, double hi) { return {ParamTransform::Bounded, lo, hi}; }
  static ParamBound log_bounded(double lo, double hi) { return {ParamTransform::LogBounded, lo, hi}; }
};

// "identity" | "log" | "bounded" | "log_bounded" (names for config files); throws OptionsError.
ParamTransform parse_param_transform(const std::string& name);

// A Dynamics whose parameters are the unconstrained q of `inner`'s physical parameters p:
// rhs/jacobian/jvp evaluate inner at p = T(q); vjp returns (df/dq)^T a = (df/dp)^T a .* T'(q).
// Workspace: inner's plus 2 * param_size doubles.
class TransformedParameters final : public Dynamics {
 public:
  // One bound per parameter of inner (throws OptionsError on a size mismatch or invalid bound).
  TransformedParameters(std::shared_ptr<const Dynamics> inner, std::vector<ParamBound> bounds);
  // The same bound for every parameter.
  TransformedParameters(std::shared_ptr<const Dynamics> inner, ParamBound bound);

  const Dynamics& inner() const { return *inner_; }
  const std::vector<ParamBound>& bounds() const { return bounds_; }
  Vector to_physical(ConstVectorRef q) const;
  Vector to_internal(ConstVectorRef p) const;

  int state_size() const override { return inner_->state_size(); }
  bool smooth() const override { return inner_->smooth(); }  // the bounds map parameters smoothly
  int param_size() const override { return inner_->param_size(); }
  int workspace_size() const override { return inner_->workspace_size() + 2 * param_size(); }

  void rhs(double t, ConstVectorRef z, ConstVectorRef q, VectorRef f, VectorRef work) const override;
  void vjp(double t, ConstVectorRef z, ConstVectorRef q, ConstVectorRef a, VectorRef a_dfdz,
           VectorRef a_dfdq, VectorRef work) const override;
  void jacobian(double t, ConstVectorRef z, ConstVectorRef q, MatrixRef J, VectorRef work) const override;
  void jvp(double t, ConstVectorRef z, ConstVectorRef q, ConstVectorRef v, VectorRef Jv,
           VectorRef work) const override;

 private:
  void physical(ConstVectorRef q, double* p) const;
  std::shared_ptr<const Dynamics> inner_;
  std::vector<ParamBound> bounds_;
};

}  // namespace cvnode
