// First-order optimizers over one flat parameter vector: Adam, AdamW (decoupled weight decay) and
// SGD with (Nesterov) momentum. Their whole state is a few named vectors and one counter, so a
// checkpoint can store it and a resumed run continues bit for bit.
#pragma once

#include <map>
#include <string>

#include "cvnode/dynamics.h"

namespace cvnode {

enum class OptimizerKind { Adam, AdamW, Sgd };
OptimizerKind parse_optimizer(const std::string& name);  // "adam" | "adamw" | "sgd"; OptionsError
const char* optimizer_name(OptimizerKind k);

struct OptimizerOptions {
  OptimizerKind kind = OptimizerKind::Adam;
  double lr = 1e-2;        // base learning rate (a Schedule scales it per epoch)
  double beta1 = 0.9;      // Adam/AdamW first-moment decay
  double beta2 = 0.999;    // Adam/AdamW second-moment decay
  double eps = 1e-8;       // Adam/AdamW denominator guard
  double momentum = 0.9;   // SGD momentum (0 = plain SGD)
  bool nesterov = false;   // SGD: Nesterov momentum
  // Adam and SGD: L2 penalty added to the gradient; AdamW: decoupled decay x -= lr * wd * x.
  // Applied only where the decay mask is 1 (weights, not biases or initial states).
  double weight_decay = 0;
  // Rescale the gradient to this Euclidean norm when it is larger (0 = no clipping).
  double clip_norm = 0;
  // At each switch of a window curriculum (data.window_epochs, data.window_stages): start the
  // optimizer's moments afresh. Adam's second moments from short windows are far smaller than
  // the gradients of longer windows or whole series, so the first steps after a switch would be
  // many times the learning rate.
  bool reset_at_phase = false;

  std::string validate() const;  // empty when valid
};

class Optimizer {
 public:
  Optimizer(const OptimizerOptions& options, int size);

  // One update of x with gradient g (already clipped) at learning rate lr. Entries where
  // `trainable` is 0 are left unchanged; `decay` selects where weight decay applies.
  void step(VectorRef x, const Vector& g, double lr, const Vector& trainable, const Vector& decay);

  // The state, for checkpoints: vectors "m" and "v" (v unused by SGD) and the step count.
  const Vector& m() const { return m_; }
  const Vector& v() const { return v_; }
  long steps() const { return t_; }
  void set_state(const Vector& m, const Vector& v, long steps);
  const OptimizerOptions& options() const { return o_; }

 private:
  OptimizerOptions o_;
  Vector m_, v_;
  long t_ = 0;
};

// Clips g in place to norm <= max_norm (if max_norm > 0) and returns the norm before clipping.
double clip_gradient(Vector& g, double max_norm);

}  // namespace cvnode
