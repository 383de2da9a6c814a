// The paper's planar continuous normalizing flow (Chen et al. 2018, section 4.1): M planar units
// whose parameters are functions of time given by a hypernetwork,
//
//   f(t, z) = (1/M) sum_m u_m(t) tanh(w_m(t) . z + b_m(t)),   u_m = u~_m * sigmoid(g_m),
//
// with [w, u~, g, b](t) the output of an MLP of t (1 -> H -> H -> 3 M D + M, tanh): the shape of
// torchdiffeq's examples/cnf.py. Its Jacobian sum_m u_m tanh'(a_m) w_m^T has the exact trace
// (1/M) sum_m tanh'(a_m) u_m . w_m at O(M D) cost; as a ProbedField it serves the same flow
// machinery (Cnf) as the MLP, with all derivatives analytic.
#pragma once

#include "cvnode/probed_mlp.h"

namespace cvnode {

struct PlanarFlowSpec {
  int dim = 2;           // D
  int width = 64;        // M planar units
  int hyper_hidden = 32; // H, the hypernetwork's two hidden layers
  Init init = Init::PyTorch;

  std::string validate() const;
};

class PlanarFlow final : public ProbedField {
 public:
  explicit PlanarFlow(PlanarFlowSpec spec);  // throws std::invalid_argument

  const PlanarFlowSpec& spec() const { return spec_; }
  const ProbedMlp& hypernetwork() const { return hyper_; }
  int input_size() const override { return spec_.dim; }
  int output_size() const override { return spec_.dim; }
  int param_size() const override { return hyper_.param_size(); }
  bool smooth() const override { return true; }
  int workspace_size(int batch, int probes) const override;
  Vector initial_parameters(std::uint64_t seed) const override { return hyper_.initial_parameters(seed); }

  void forward(double t, ConstMatrixRef Z, ConstVectorRef theta, ConstMatrixRef E, MatrixRef F, MatrixRef JE,
               VectorRef work) const override;
  void reverse(double t, ConstVectorRef theta, ConstMatrixRef E, ConstMatrixRef Fbar, ConstMatrixRef G,
               MatrixRef Zbar, VectorRef theta_bar, MatrixRef Ebar, VectorRef work) const override;

 private:
  static ProbedMlpSpec hyper_spec(const PlanarFlowSpec& s);
  PlanarFlowSpec spec_;
  ProbedMlp hyper_;
  int hyper_out_ = 0;   // 3 M D + M
  int hyper_work_ = 0;  // the hypernetwork's workspace (one input, no probes)
};

}  // namespace cvnode
