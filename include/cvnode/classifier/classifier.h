// The image classifiers of Chen et al. (2018), section 3 and Table 1: a downsampling stem, a
// feature block, and a head (group norm, ReLU, global average pooling, a linear map, softmax
// cross-entropy; the pooling may keep a coarse grid instead). The block is, by kind:
//  * odenet: ConvDynamics integrated over [0, horizon] by one of cvnode's engines: the CVODES
//    adjoint (method adams or bdf) or backpropagation through adaptive Dormand-Prince steps
//    (method dopri5);
//  * rknet: the same dynamics through rk_steps fixed Dormand-Prince steps, backpropagated (the
//    dopri5 engine with its error control switched off);
//  * resnet: resnet_blocks residual layers z <- z + f_k(z), each f_k the same block with its own
//    parameters and no time channel, backpropagated through stored activations.
// A minibatch of B images is one stacked ODE of B * H * W * C states (ConvDynamics' layout).
// The stem and head run over fixed chunks of images on OpenMP threads with per-chunk parameter
// gradients summed in chunk order: results do not depend on the thread count.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "cvnode/conv_dynamics.h"
#include "cvnode/regularization.h"
#include "cvnode/solver_options.h"
#include "cvnode/solver_stats.h"

namespace cvnode {

enum class ClassifierKind { OdeNet, ResNet, RkNet };
ClassifierKind parse_classifier_kind(const std::string& name);  // odenet | resnet | rknet (OptionsError)
const char* classifier_kind_name(ClassifierKind kind);

struct ClassifierSpec {
  ClassifierKind kind = ClassifierKind::OdeNet;
  int image_size = 28;  // square one-channel input images
  int classes = 10;
  // Feature maps of every layer. The paper's 64 gives 0.21M parameters (odenet) at ~4x the
  // work per image of 32 (0.05M).
  int channels = 32;
  // Group-norm groups in the stem, the block and the head (0 = no normalisation); the paper
  // uses min(32, channels).
  int groups = 32;
  bool time_channel = true;  // odenet and rknet blocks see t; resnet blocks never do
  // The block's activation (ConvDynamicsSpec::activation); the stem and head use ReLU.
  Activation activation = Activation::Relu;
  // The head averages the feature map over pool_grid x pool_grid cells (1: the paper's global
  // average pooling; the linear map then sees channels * pool_grid^2 features).
  int pool_grid = 1;
  int resnet_blocks = 6;     // resnet depth (the paper: 6)
  double horizon = 1.0;      // odenet and rknet integrate over [0, horizon]
  int rk_steps = 2;          // rknet: fixed Dormand-Prince steps (6 evaluations each)
  // odenet's engine and tolerances (rknet ignores it). The default: the CVODES adjoint with
  // Adams at rtol = atol = 1e-3, the tolerance of the paper's experiments.
  SolverOptions solver = default_solver();
  int chunk = 8;    // images per matrix product and per parallel work unit
  int threads = 0;  // OpenMP threads (0 = all)

  static SolverOptions default_solver();
  std::string validate() const;  // empty when valid
  // The stem's output (and the block's) image size: (image_size - 2) / 4 for the paper's stem.
  int feature_size() const;
  // Every field as a JSON object text (with the block's method and tolerances), and back:
  // checkpoints store it so that a trained model is rebuilt exactly. from_json throws
  // OptionsError naming a missing or invalid field.
  std::string to_json() const;
  static ClassifierSpec from_json(const std::string& text);
};

// Mean cross-entropy of a minibatch, its gradient and how much solving it took.
struct ClassifierResult {
  double loss = 0;   // mean softmax cross-entropy over the minibatch
  int correct = 0;   // images whose largest logit is their label
  Vector gradient;   // dLoss/dtheta (empty from evaluate())
  Matrix logits;     // classes x B
  long nfe_forward = 0, nfe_backward = 0;  // right-hand sides and VJPs of the block (0 for resnet)
  SolverStats forward, backward;
  // gradient() under regularisers (set_regularization): the gradient is that of loss + penalty,
  // penalty the running costs' integrals plus error_weight * solver_error; solver_error is
  // sum_s E_s h_s over dopri5's steps (0 for the adjoint); end_time where the block stopped.
  double penalty = 0, solver_error = 0, end_time = 0;
};

class ImageClassifier {
 public:
  // Throws OptionsError with ClassifierSpec::validate()'s reason.
  explicit ImageClassifier(const ClassifierSpec& spec);
  ~ImageClassifier();
  ImageClassifier(const ImageClassifier&) = delete;
  ImageClassifier& operator=(const ImageClassifier&) = delete;

  const ClassifierSpec& spec() const { return spec_; }
  // theta = [stem | block(s) | head]; sizes of the three parts.
  int param_size() const { return stem_params_ + body_params_ + head_params_; }
  int stem_params() const { return stem_params_; }
  int body_params() const { return body_params_; }
  int head_params() const { return head_params_; }
  // The block's dynamics (for odenet and rknet the one integrated; for resnet the shape of each layer).
  const ConvDynamics& block() const { return *block_; }
  // PyTorch's default initialisation (uniform +-1/sqrt(fan_in), group norm 1 and 0), seeded.
  Vector initial_parameters(std::uint64_t seed) const;

  // `images`: pixels x B in [0, 1] (row-major pixels, one image a column); labels in [0, classes).
  // Loss, accuracy and the gradient of the mean cross-entropy with respect to theta, plus the
  // regularisers' terms when set; `step_seed` draws STEER's end time and the Hutchinson probes.
  ClassifierResult gradient(const Vector& theta, const Matrix& images, const std::vector<int>& labels,
                            std::uint64_t step_seed = 0);
  // The regularisers of later gradient() calls (issue 16, docs/regularization.md), for odenet and
  // rknet blocks; evaluate() and features() never apply them. Per image, like the loss:
  //   kinetic_weight   lambda int_0^T |f(t, z)|^2 dt
  //   jacobian_weight  lambda int_0^T |J eps|^2 dt, Hutchinson with jacobian_probes Rademacher
  //                    probes and central-difference JVPs (JacobianDifference); the exact norm
  //                    (one JVP per state entry) is refused
  //   steer            the block's end time drawn from U(horizon - b, horizon + b) each step
  //   error_weight     lambda sum_s E_s h_s over dopri5's steps (odenet with dopri5, rknet)
  // Throws OptionsError naming the key a block cannot take (resnet: all of them; adams/bdf:
  // error_weight; steer >= horizon).
  void set_regularization(const RegularizationOptions& options);
  // Forward only (logits, loss, accuracy, NFE); `solver` overrides the block's engine options
  // (e.g. a tolerance sweep) when not null.
  ClassifierResult evaluate(const Vector& theta, const Matrix& images, const std::vector<int>& labels,
                            const SolverOptions* solver = nullptr);
  // The block's input (the stem's output) and output for a minibatch, n x B each, forward only.
  void features(const Vector& theta, const Matrix& images, Matrix& z0, Matrix& z1,
                const SolverOptions* solver = nullptr, long* nfe = nullptr);

 private:
  struct Impl;
  ClassifierSpec spec_;
  std::unique_ptr<ConvDynamics> block_;
  int stem_params_ = 0, body_params_ = 0, head_params_ = 0;
  std::unique_ptr<Impl> impl_;
};

}  // namespace cvnode
