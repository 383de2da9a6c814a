// Multilayer perceptron dynamics: f(t, z, u) = W_L s(... s(W_1 [z; t; u] + b_1) ...) + b_L - k .* z
// (t and the inputs u optional).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "cvnode/activation.h"
#include "cvnode/dynamics.h"

namespace cvnode {

struct MlpSpec {
  // Widths from input to output, e.g. {2, 50, 2}. The first and last equal the state size
  // (the first does not count the time input).
  std::vector<int> layers;
  // Applied after every hidden layer, never after the last one.
  Activation activation = Activation::Tanh;
  // Feed t to the first layer as an extra input (W_1 then has layers[0] + 1 columns).
  bool time_input = false;
  // Exogenous inputs u(t) (Dynamics::input_size): the first layer reads [z; t if time_input; u]
  // (W_1 gains `inputs` more columns). The forms without u (and the batched ones) feed u = 0.
  int inputs = 0;
  // Optional fixed elementwise linear decay k (size state_size, or empty for none): the
  // dynamics become MLP(z) - k .* z, a stiff term the network need not learn.
  Vector k_diag;

  // Empty when valid, else a readable reason.
  std::string validate() const;
};

enum class Init {
  Glorot,      // uniform in +-sqrt(6 / (fan_in + fan_out)), zero biases
  He,          // normal with std sqrt(2 / fan_in), zero biases
  PyTorch,     // uniform in +-1/sqrt(fan_in) for weights and biases (torch.nn.Linear)
  SmallOutput  // Glorot, then the last layer scaled by 0.1: starts near f = 0
};

class Mlp final : public Dynamics {
 public:
  // Throws std::invalid_argument with the reason from MlpSpec::validate().
  explicit Mlp(MlpSpec spec);

  const MlpSpec& spec() const { return spec_; }
  int state_size() const override { return spec_.layers.front(); }
  // Smooth unless an activation has a kink (relu) or a jump in its second derivative (elu).
  bool smooth() const override {
    return spec_.activation != Activation::Relu && spec_.activation != Activation::Elu;
  }
  int param_size() const override { return n_params_; }
  int workspace_size() const override { return n_work_; }
  int input_size() const override { return spec_.inputs; }

  // theta = [W_1 row-major, b_1, W_2 row-major, b_2, ...], the layout of torch's state_dict
  // and of ../shared/bench. Deterministic for a given seed.
  Vector initial_parameters(Init scheme, std::uint64_t seed) const;
  // Offset of W_l (l = 0 for the first layer) and of b_l in theta.
  int weight_offset(int layer) const { return w_off_[layer]; }
  int bias_offset(int layer) const { return b_off_[layer]; }

  void rhs(double t, ConstVectorRef z, ConstVectorRef theta, VectorRef f,
           VectorRef work) const override;
  void vjp(double t, ConstVectorRef z, ConstVectorRef theta, ConstVectorRef a, VectorRef a_dfdz,
           VectorRef a_dfdtheta, VectorRef work) const override;
  // The activations of the previous rhs/vjp at this point are still in `work`: backward pass only.
  void vjp_again(double t, ConstVectorRef z, ConstVectorRef theta, ConstVectorRef a, VectorRef a_dfdz,
                 VectorRef a_dfdtheta, VectorRef work) const override;
  void jacobian(double t, ConstVectorRef z, ConstVectorRef theta, MatrixRef J,
                VectorRef work) const override;
  void jvp(double t, ConstVectorRef z, ConstVectorRef theta, ConstVectorRef v, VectorRef Jv,
           VectorRef work) const override;

  void rhs_u(double t, ConstVectorRef z, ConstVectorRef u, ConstVectorRef theta, VectorRef f,
             VectorRef work) const override;
  void vjp_u(double t, ConstVectorRef z, ConstVectorRef u, ConstVectorRef theta, ConstVectorRef a,
             VectorRef a_dfdz, VectorRef a_dfdtheta, VectorRef work) const override;
  void jacobian_u(double t, ConstVectorRef z, ConstVectorRef u, ConstVectorRef theta, MatrixRef J,
                  VectorRef work) const override;
  void jvp_u(double t, ConstVectorRef z, ConstVectorRef u, ConstVectorRef theta, ConstVectorRef v,
             VectorRef Jv, VectorRef work) const override;

  // Batched forms: the layers run as matrix-matrix products over the B columns.
  int batch_workspace_size(int batch) const override;
  void rhs_batch(double t, ConstMatrixRef Z, ConstVectorRef theta, MatrixRef F,
                 VectorRef work) const override;
  void vjp_batch(double t, ConstMatrixRef Z, ConstVectorRef theta, ConstMatrixRef A,
                 MatrixRef A_dfdz, VectorRef a_dfdtheta, VectorRef work) const override;
  void vjp_batch_again(double t, ConstMatrixRef Z, ConstVectorRef theta, ConstMatrixRef A,
                       MatrixRef A_dfdz, VectorRef a_dfdtheta, VectorRef work) const override;
  void jvp_batch(double t, ConstMatrixRef Z, ConstVectorRef theta, ConstMatrixRef V, MatrixRef JV,
                 VectorRef work) const override;

 private:
  // Batched forward pass; the workspace layout is the single-state one scaled by B columns.
  void forward_batch(double t, ConstMatrixRef Z, ConstVectorRef theta, double* work) const;
  // The backward passes of vjp / vjp_batch over a forward pass already in `work`.
  void backward(ConstVectorRef theta, ConstVectorRef a, VectorRef a_dfdz, VectorRef a_dfdtheta,
                double* work) const;
  void backward_batch(ConstVectorRef theta, ConstMatrixRef A, MatrixRef A_dfdz, VectorRef a_dfdtheta,
                      double* work) const;
  int max_width() const;

  // Runs the layers, leaving pre-activations u_l and outputs x_l in work; returns nothing since
  // the caller reads the last layer's output from work.
  // u: the inputs (spec.inputs entries), or null for zeros.
  void forward(double t, ConstVectorRef z, ConstVectorRef theta, double* work, const double* u = nullptr) const;
  void rhs_at(double t, ConstVectorRef z, const double* u, ConstVectorRef theta, VectorRef f, VectorRef work) const;
  void jacobian_at(double t, ConstVectorRef z, const double* u, ConstVectorRef theta, MatrixRef J,
                   VectorRef work) const;
  void jvp_at(double t, ConstVectorRef z, const double* u, ConstVectorRef theta, ConstVectorRef v, VectorRef Jv,
              VectorRef work) const;

  MlpSpec spec_;
  int n_in_ = 0;  // first layer's input width: state size, plus one with time input
  int n_params_ = 0;
  int n_work_ = 0;
  std::vector<int> w_off_, b_off_;  // parameter offsets per layer
  std::vector<int> x_off_, u_off_;  // workspace offsets: x_0 (input) .. x_L, u_1 .. u_L
  int g_off_ = 0, g2_off_ = 0;      // two backward buffers of the widest layer
  int m_off_ = 0, m2_off_ = 0;      // two (widest x n) buffers for the Jacobian
};

}  // namespace cvnode
