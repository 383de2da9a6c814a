#include "cvnode/classifier/classifier.h"

#include <algorithm>
#include <omp.h>

#include <nlohmann/json.hpp>

#include "core/names.h"
#include "cvnode/errors.h"
#include "models/classifier/body.h"
#include "models/classifier/layers.h"

namespace cvnode {

namespace {
const detail::EnumName<ClassifierKind> kClassifierKindNames[] = {
    {ClassifierKind::OdeNet, "odenet"},
    {ClassifierKind::ResNet, "resnet"},
    {ClassifierKind::RkNet, "rknet"}};
}  // namespace

ClassifierKind parse_classifier_kind(const std::string& name) {
  return detail::parse_enum(kClassifierKindNames, name, "classifier kind");
}

const char* classifier_kind_name(ClassifierKind kind) { return detail::enum_name(kClassifierKindNames, kind); }

SolverOptions ClassifierSpec::default_solver() {
  SolverOptions o;
  o.method = "adams";
  o.rtol = 1e-3;
  o.atol = 1e-3;
  // The adjoint keeps 2 (checkpoint_steps + 1) states of the whole minibatch for its Hermite
  // interpolation, allocated up front: 20 covers a whole [0, 1] solve at this tolerance in one
  // interval (no recomputation) for ~40 stacked states instead of the default's ~200.
  o.cvodes.checkpoint_steps = 20;
  return o;
}

int ClassifierSpec::feature_size() const {
  // conv 3x3 without padding, then two 4x4 convolutions of stride 2 and padding 1
  const int a = image_size - 2, b = (a - 2) / 2 + 1;
  return (b - 2) / 2 + 1;
}

std::string ClassifierSpec::validate() const {
  if (image_size < 8) return "classifier: image_size must be >= 8, got " + std::to_string(image_size);
  if (classes < 2) return "classifier: classes must be >= 2, got " + std::to_string(classes);
  if (channels < 1) return "classifier: channels must be >= 1, got " + std::to_string(channels);
  if (groups < 0 || (groups > 0 && channels % groups != 0))
    return "classifier: groups = " + std::to_string(groups) + " must divide channels = " + std::to_string(channels) +
           " (0 = no normalisation)";
  if (pool_grid < 1 || pool_grid > feature_size())
    return "classifier: pool_grid must lie in [1, " + std::to_string(feature_size()) + "] (the feature map's side), got " +
           std::to_string(pool_grid);
  if (resnet_blocks < 1) return "classifier: resnet_blocks must be >= 1, got " + std::to_string(resnet_blocks);
  if (!(horizon > 0)) return "classifier: horizon must be > 0, got " + std::to_string(horizon);
  if (rk_steps < 1) return "classifier: rk_steps must be >= 1, got " + std::to_string(rk_steps);
  if (chunk < 1) return "classifier: chunk must be >= 1, got " + std::to_string(chunk);
  if (threads < 0) return "classifier: threads must be >= 0, got " + std::to_string(threads);
  if (kind == ClassifierKind::OdeNet) {
    if (std::string why = solver.validate(); !why.empty()) return "classifier: " + why;
  }
  return {};
}

std::string ClassifierSpec::to_json() const {
  nlohmann::json j;
  j["kind"] = classifier_kind_name(kind);
  j["image_size"] = image_size;
  j["classes"] = classes;
  j["channels"] = channels;
  j["groups"] = groups;
  j["time_channel"] = time_channel;
  j["activation"] = activation_name(activation);
  j["pool_grid"] = pool_grid;
  j["resnet_blocks"] = resnet_blocks;
  j["horizon"] = horizon;
  j["rk_steps"] = rk_steps;
  j["method"] = solver.method;
  j["rtol"] = solver.rtol;
  j["atol"] = solver.atol;
  j["checkpoint_steps"] = solver.cvodes.checkpoint_steps;
  j["chunk"] = chunk;
  return j.dump();
}

ClassifierSpec ClassifierSpec::from_json(const std::string& text) {
  ClassifierSpec s;
  try {
    const nlohmann::json j = nlohmann::json::parse(text);
    s.kind = parse_classifier_kind(j.at("kind").get<std::string>());
    s.image_size = j.at("image_size").get<int>();
    s.classes = j.at("classes").get<int>();
    s.channels = j.at("channels").get<int>();
    s.groups = j.at("groups").get<int>();
    s.time_channel = j.at("time_channel").get<bool>();
    s.activation = parse_activation(j.at("activation").get<std::string>());
    s.pool_grid = j.at("pool_grid").get<int>();
    s.resnet_blocks = j.at("resnet_blocks").get<int>();
    s.horizon = j.at("horizon").get<double>();
    s.rk_steps = j.at("rk_steps").get<int>();
    s.solver.method = j.at("method").get<std::string>();
    s.solver.rtol = j.at("rtol").get<double>();
    s.solver.atol = j.at("atol").get<double>();
    s.solver.cvodes.checkpoint_steps = j.at("checkpoint_steps").get<int>();
    s.chunk = j.at("chunk").get<int>();
  } catch (const nlohmann::json::exception& e) {
    throw OptionsError(std::string("classifier specification: ") + e.what());
  }
  if (std::string why = s.validate(); !why.empty()) throw OptionsError(why);
  return s;
}

namespace {
// rknet: Dormand-Prince with `steps` fixed steps over [0, horizon] (Dopri5Options::fixed_step:
// every step accepted, no error control), the gradient by backpropagation through them.
SolverOptions fixed_steps(double horizon, int steps) {
  SolverOptions o;
  o.method = "dopri5";
  o.dopri5.fixed_step = horizon / steps;
  return o;
}
}  // namespace

struct ImageClassifier::Impl {
  detail::Stem stem;
  detail::Head head;
  std::unique_ptr<detail::Body> body;
  Matrix z0, z1, dz0;

  Impl(const ClassifierSpec& s, const ConvDynamics& block, int threads)
      : stem(s.image_size, s.channels, s.groups, s.chunk, threads),
        head(s.channels, s.feature_size(), s.groups, s.pool_grid, s.classes) {
    switch (s.kind) {
      case ClassifierKind::OdeNet: body = detail::make_ode_body(block, s.solver, s.horizon); break;
      case ClassifierKind::RkNet: body = detail::make_ode_body(block, fixed_steps(s.horizon, s.rk_steps), s.horizon); break;
      case ClassifierKind::ResNet: body = detail::make_residual_body(block, s.resnet_blocks); break;
    }
  }
};

ImageClassifier::ImageClassifier(const ClassifierSpec& spec) : spec_(spec) {
  if (std::string why = spec_.validate(); !why.empty()) throw OptionsError(why);
  const int threads = spec_.threads > 0 ? spec_.threads : std::max(1, omp_get_max_threads());
  ConvDynamicsSpec b;
  b.channels = spec_.channels;
  b.height = b.width = spec_.feature_size();
  b.groups = spec_.groups;
  b.time_channel = spec_.kind != ClassifierKind::ResNet && spec_.time_channel;
  b.activation = spec_.activation;
  b.chunk = spec_.chunk;
  b.threads = threads;
  block_ = std::make_unique<ConvDynamics>(b);
  impl_ = std::make_unique<Impl>(spec_, *block_, threads);
  stem_params_ = impl_->stem.param_size();
  body_params_ = impl_->body->param_size();
  head_params_ = impl_->head.param_size();
}

ImageClassifier::~ImageClassifier() = default;

Vector ImageClassifier::initial_parameters(std::uint64_t seed) const {
  Vector theta(param_size());
  detail::Rng rng(seed);
  impl_->stem.initialise(theta.data(), rng);
  theta.segment(stem_params_, body_params_) = impl_->body->initial_parameters(rng.next());
  impl_->head.initialise(theta.data() + stem_params_ + body_params_, rng);
  return theta;
}

namespace {
void check_batch(const ClassifierSpec& s, int params, const Vector& theta, const Matrix& images,
                 const std::vector<int>& labels) {
  if (theta.size() != params)
    throw OptionsError("classifier: theta has " + std::to_string(theta.size()) + " entries, the model " +
                       std::to_string(params));
  if (images.rows() != static_cast<Eigen::Index>(s.image_size) * s.image_size)
    throw OptionsError("classifier: images have " + std::to_string(images.rows()) + " pixels, the model takes " +
                       std::to_string(s.image_size) + " x " + std::to_string(s.image_size));
  if (images.cols() < 1 || static_cast<Eigen::Index>(labels.size()) != images.cols())
    throw OptionsError("classifier: " + std::to_string(images.cols()) + " images but " + std::to_string(labels.size()) +
                       " labels");
  for (int y : labels)
    if (y < 0 || y >= s.classes)
      throw OptionsError("classifier: label " + std::to_string(y) + " outside [0, " + std::to_string(s.classes) + ")");
}
}  // namespace

void ImageClassifier::set_regularization(const RegularizationOptions& options) { impl_->body->set_regularization(options); }

ClassifierResult ImageClassifier::gradient(const Vector& theta, const Matrix& images, const std::vector<int>& labels,
                                           std::uint64_t step_seed) {
  check_batch(spec_, param_size(), theta, images, labels);
  Impl& m = *impl_;
  ClassifierResult r;
  r.gradient.setZero(param_size());
  const double* th = theta.data();
  double* g = r.gradient.data();
  const int head_off = stem_params_ + body_params_;
  m.stem.forward(th, images, m.z0);
  detail::BodyStats st;
  m.body->gradient(
      th + stem_params_, m.z0,
      [&](const Matrix& Z1, Matrix& dZ1) {
        return r.loss = m.head.run(th + head_off, Z1, labels, r.logits, r.correct, &dZ1, g + head_off);
      },
      m.dz0, g + stem_params_, st, step_seed);
  m.stem.backward(th, m.dz0, g);
  r.penalty = st.objective - r.loss;
  r.solver_error = st.solver_error;
  r.end_time = st.end_time;
  r.nfe_forward = st.nfe_forward;
  r.nfe_backward = st.nfe_backward;
  r.forward = st.forward;
  r.backward = st.backward;
  return r;
}

void ImageClassifier::features(const Vector& theta, const Matrix& images, Matrix& z0, Matrix& z1,
                               const SolverOptions* solver, long* nfe) {
  if (theta.size() != param_size())
    throw OptionsError("classifier: theta has " + std::to_string(theta.size()) + " entries, the model " +
                       std::to_string(param_size()));
  Impl& m = *impl_;
  m.stem.forward(theta.data(), images, z0);
  detail::BodyStats st;
  m.body->forward(theta.data() + stem_params_, z0, z1, st, solver);
  if (nfe) *nfe = st.nfe_forward;
}

ClassifierResult ImageClassifier::evaluate(const Vector& theta, const Matrix& images, const std::vector<int>& labels,
                                           const SolverOptions* solver) {
  check_batch(spec_, param_size(), theta, images, labels);
  Impl& m = *impl_;
  ClassifierResult r;
  m.stem.forward(theta.data(), images, m.z0);
  detail::BodyStats st;
  m.body->forward(theta.data() + stem_params_, m.z0, m.z1, st, solver);
  r.loss = m.head.run(theta.data() + stem_params_ + body_params_, m.z1, labels, r.logits, r.correct, nullptr, nullptr);
  r.nfe_forward = st.nfe_forward;
  r.forward = st.forward;
  return r;
}

}  // namespace cvnode
