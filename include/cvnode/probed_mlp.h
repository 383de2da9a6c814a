// A multilayer perceptron as a ProbedField: f(t, z) = W_L s(... s(W_1 [z; t] + b_1) ...) + b_L with
// the Jacobian probes J E and the reverse pass over both (second derivatives of the network),
// all analytic and batched as matrix-matrix products. The continuous normalizing flow's
// time-conditioned dynamics, and with other widths the planar flow's hypernetwork.
#pragma once

#include <string>
#include <vector>

#include "cvnode/activation.h"
#include "cvnode/mlp.h"
#include "cvnode/probed_field.h"

namespace cvnode {

struct ProbedMlpSpec {
  // Widths from input (not counting the time input) to output, e.g. {2, 64, 64, 2}; input and
  // output may differ (a hypernetwork).
  std::vector<int> layers;
  Activation activation = Activation::Tanh;  // after every hidden layer
  bool time_input = false;                   // t is an extra input of the first layer
  Init init = Init::Glorot;                  // initial_parameters()

  std::string validate() const;  // empty when valid
};

class ProbedMlp final : public ProbedField {
 public:
  // Throws std::invalid_argument with the reason from validate().
  explicit ProbedMlp(ProbedMlpSpec spec);

  const ProbedMlpSpec& spec() const { return spec_; }
  int input_size() const override { return spec_.layers.front(); }
  int output_size() const override { return spec_.layers.back(); }
  int param_size() const override { return n_params_; }
  bool smooth() const override {
    return spec_.activation != Activation::Relu && spec_.activation != Activation::Elu;
  }
  int workspace_size(int batch, int probes) const override;
  // theta = [W_1 row-major, b_1, W_2, b_2, ...], the layout of Mlp.
  Vector initial_parameters(std::uint64_t seed) const override;

  void forward(double t, ConstMatrixRef Z, ConstVectorRef theta, ConstMatrixRef E, MatrixRef F, MatrixRef JE,
               VectorRef work) const override;
  void reverse(double t, ConstVectorRef theta, ConstMatrixRef E, ConstMatrixRef Fbar, ConstMatrixRef G,
               MatrixRef Zbar, VectorRef theta_bar, MatrixRef Ebar, VectorRef work) const override;

 private:
  ProbedMlpSpec spec_;
  int L_ = 0;        // layers of weights
  int n_in_ = 0;     // first layer's input width (with the time input)
  int n_params_ = 0;
  int wmax_ = 0;     // widest layer
  std::vector<int> w_off_, b_off_;
  // Workspace per state column: X_0 .. X_L inputs/outputs, U_1 .. U_L, s'(U_l) for hidden l;
  // per probe column: dU_l and dX_l = s'(U_l) dU_l. Offsets in units of B (state part) and
  // of B K (probe part, after the state part); then the reverse buffers.
  std::vector<int> x_col_, u_col_, d_col_, du_col_, dx_col_;
  int state_cols_ = 0, probe_cols_ = 0;
};

}  // namespace cvnode
