#include "cvnode/parameter_transform.h"

#include <cmath>

#include "core/names.h"
#include "cvnode/errors.h"

namespace cvnode {

namespace {
// Overflow-free logistic function.
double sigmoid(double q) {
  if (q >= 0) return 1.0 / (1.0 + std::exp(-q));
  const double e = std::exp(q);
  return e / (1.0 + e);
}
}  // namespace

std::string ParamBound::validate() const {
  switch (kind) {
    case ParamTransform::Identity:
    case ParamTransform::Log:
      return {};
    case ParamTransform::Bounded:
      if (!(std::isfinite(lower) && std::isfinite(upper) && lower < upper))
        return "a bounded parameter needs finite lower < upper, got [" + std::to_string(lower) + ", " +
               std::to_string(upper) + "]";
      return {};
    case ParamTransform::LogBounded:
      if (!(std::isfinite(upper) && lower > 0 && lower < upper))
        return "a log_bounded parameter needs 0 < lower < upper < inf, got [" + std::to_string(lower) + ", " +
               std::to_string(upper) + "]";
      return {};
  }
  return "unknown parameter transform";
}

double ParamBound::to_physical(double q) const {
  switch (kind) {
    case ParamTransform::Identity: return q;
    case ParamTransform::Log: return std::exp(q);
    case ParamTransform::Bounded: return lower + (upper - lower) * sigmoid(q);
    case ParamTransform::LogBounded: return std::exp(std::log(lower) + std::log(upper / lower) * sigmoid(q));
  }
  return q;
}

double ParamBound::derivative(double q) const {
  switch (kind) {
    case ParamTransform::Identity: return 1.0;
    case ParamTransform::Log: return std::exp(q);
    case ParamTransform::Bounded: {
      const double s = sigmoid(q);
      return (upper - lower) * s * (1 - s);
    }
    case ParamTransform::LogBounded: {
      const double s = sigmoid(q);
      return to_physical(q) * std::log(upper / lower) * s * (1 - s);
    }
  }
  return 1.0;
}

double ParamBound::to_internal(double p) const {
  auto outside = [&](const char* what) {
    return OptionsError("parameter value " + std::to_string(p) + " lies outside the domain of a " + what +
                        " transform");
  };
  switch (kind) {
    case ParamTransform::Identity: return p;
    case ParamTransform::Log:
      if (!(p > 0)) throw outside("log");
      return std::log(p);
    case ParamTransform::Bounded: {
      if (!(p > lower && p < upper)) throw outside("bounded");
      const double s = (p - lower) / (upper - lower);
      return std::log(s / (1 - s));
    }
    case ParamTransform::LogBounded: {
      if (!(p > lower && p < upper)) throw outside("log_bounded");
      const double s = std::log(p / lower) / std::log(upper / lower);
      return std::log(s / (1 - s));
    }
  }
  return p;
}

namespace {
const detail::EnumName<ParamTransform> kParamTransformNames[] = {
    {ParamTransform::Identity, "identity"},
    {ParamTransform::Log, "log"},
    {ParamTransform::Bounded, "bounded"},
    {ParamTransform::LogBounded, "log_bounded"},
    {ParamTransform::Identity, "none", true}};
}  // namespace

ParamTransform parse_param_transform(const std::string& name) {
  return detail::parse_enum(kParamTransformNames, name, "parameter transform");
}

TransformedParameters::TransformedParameters(std::shared_ptr<const Dynamics> inner, std::vector<ParamBound> bounds)
    : inner_(std::move(inner)), bounds_(std::move(bounds)) {
  if (!inner_) throw OptionsError("TransformedParameters needs a Dynamics to wrap");
  if (static_cast<int>(bounds_.size()) != inner_->param_size())
    throw OptionsError("TransformedParameters got " + std::to_string(bounds_.size()) + " bounds for " +
                       std::to_string(inner_->param_size()) + " parameters");
  for (size_t i = 0; i < bounds_.size(); ++i)
    if (std::string why = bounds_[i].validate(); !why.empty())
      throw OptionsError("parameter " + std::to_string(i) + ": " + why);
}

TransformedParameters::TransformedParameters(std::shared_ptr<const Dynamics> inner, ParamBound bound)
    : TransformedParameters(inner, std::vector<ParamBound>(inner ? inner->param_size() : 0, bound)) {}

Vector TransformedParameters::to_physical(ConstVectorRef q) const {
  Vector p(q.size());
  physical(q, p.data());
  return p;
}

Vector TransformedParameters::to_internal(ConstVectorRef p) const {
  if (p.size() != param_size())
    throw OptionsError("to_internal got " + std::to_string(p.size()) + " values for " +
                       std::to_string(param_size()) + " parameters");
  Vector q(p.size());
  for (int i = 0; i < p.size(); ++i) q[i] = bounds_[i].to_internal(p[i]);
  return q;
}

void TransformedParameters::physical(ConstVectorRef q, double* p) const {
  for (int i = 0; i < q.size(); ++i) p[i] = bounds_[i].to_physical(q[i]);
}

// Workspace layout: [p (P) | dL/dp (P) | inner's workspace].
void TransformedParameters::rhs(double t, ConstVectorRef z, ConstVectorRef q, VectorRef f, VectorRef work) const {
  const int P = param_size();
  physical(q, work.data());
  inner_->rhs(t, z, work.head(P), f, work.tail(work.size() - 2 * P));
}

void TransformedParameters::vjp(double t, ConstVectorRef z, ConstVectorRef q, ConstVectorRef a, VectorRef a_dfdz,
                                VectorRef a_dfdq, VectorRef work) const {
  const int P = param_size();
  physical(q, work.data());
  const bool want_p = a_dfdq.size() > 0;
  inner_->vjp(t, z, work.head(P), a, a_dfdz, work.segment(P, want_p ? P : 0), work.tail(work.size() - 2 * P));
  if (!want_p) return;
  for (int i = 0; i < P; ++i) a_dfdq[i] = work[P + i] * bounds_[i].derivative(q[i]);
}

void TransformedParameters::jacobian(double t, ConstVectorRef z, ConstVectorRef q, MatrixRef J, VectorRef work) const {
  const int P = param_size();
  physical(q, work.data());
  inner_->jacobian(t, z, work.head(P), J, work.tail(work.size() - 2 * P));
}

void TransformedParameters::jvp(double t, ConstVectorRef z, ConstVectorRef q, ConstVectorRef v, VectorRef Jv,
                                VectorRef work) const {
  const int P = param_size();
  physical(q, work.data());
  inner_->jvp(t, z, work.head(P), v, Jv, work.tail(work.size() - 2 * P));
}

}  // namespace cvnode
