// Hybrid dynamics (universal differential equations): known physics plus a learned correction,
//   f(t, z) = g(t, z; p) + S N(t, D z[in]; theta),
// where g is a physics Dynamics with its own learnable parameters p (rate constants, ...), N a
// network (an Mlp or any Dynamics) that sees the selected components z[in] scaled by D =
// diag(input_scale), and S scatters N's outputs, each multiplied by its output_mask weight, into
// the selected components out of f (or, in general, S is a dense n x m matrix, e.g. a
// stoichiometry column). Gradients flow to both p and theta.
//
// Parameter layout: theta_hybrid = [p (physics.param_size()), theta (network.param_size())].
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "cvnode/dynamics.h"

namespace cvnode {

// How the network couples to the state. Every field may stay empty: the network then sees the
// whole state and adds to every component (its state size must equal the physics' then).
struct HybridCoupling {
  // State components the network reads, in the network's input order (size m = network's state
  // size). Empty: all components 0..n-1.
  std::vector<int> input_indices;
  // State components the network's m outputs are added to (size m; repeats add up).
  // Empty: the same as input_indices.
  std::vector<int> output_indices;
  // Per-output weights (size m) multiplying the network's outputs: 0/1 for a mask, or a scale
  // that brings the network's O(1) outputs to the physics' units. Empty: all ones.
  Vector output_mask;
  // Per-input factors (size m): the network sees input_scale .* z[in], e.g. 1/typical magnitude
  // of each species for concentrations spanning orders of magnitude. Empty: all ones.
  Vector input_scale;
  // General output map S (n x m): f += S N. Replaces output_indices and output_mask (leave
  // those empty). Its use: a network standing for one reaction's rate r, entering every species
  // by the reaction's net stoichiometry, e.g. for 2 y2 -> y2 + y3 the column (0, -1, 1).
  Matrix output_matrix;
};

class Hybrid final : public Dynamics {
 public:
  // Either part may be null (then it contributes nothing and has no parameters), not both.
  // The state size is the physics' (or, without physics, the network's). Throws OptionsError
  // naming the inconsistent field.
  Hybrid(std::shared_ptr<const Dynamics> physics, std::shared_ptr<const Dynamics> network,
         HybridCoupling coupling = {});

  const Dynamics* physics() const { return physics_.get(); }
  const Dynamics* network() const { return network_.get(); }
  int physics_param_size() const { return pg_; }  // p = theta.head(physics_param_size())
  int network_param_size() const { return pn_; }  // theta_N = theta.tail(network_param_size())
  const std::vector<int>& input_indices() const { return in_; }
  const std::vector<int>& output_indices() const { return out_; }  // empty with an output_matrix
  const Matrix& output_matrix() const { return S_; }                // empty without one
  const Vector& input_scale() const { return scale_; }              // the network sees input_scale .* z[in]

  int state_size() const override { return n_; }
  bool smooth() const override {
    return (!physics_ || physics_->smooth()) && (!network_ || network_->smooth());
  }
  int param_size() const override { return pg_ + pn_; }
  int workspace_size() const override { return n_work_; }

  // The network's inputs u(t) (Dynamics::input_size), if it takes any; the physics takes none.
  int input_size() const override { return network_ ? network_->input_size() : 0; }
  void rhs(double t, ConstVectorRef z, ConstVectorRef theta, VectorRef f, VectorRef work) const override;
  void rhs_u(double t, ConstVectorRef z, ConstVectorRef u, ConstVectorRef theta, VectorRef f,
             VectorRef work) const override;
  void vjp_u(double t, ConstVectorRef z, ConstVectorRef u, ConstVectorRef theta, ConstVectorRef a,
             VectorRef a_dfdz, VectorRef a_dfdtheta, VectorRef work) const override;
  void jacobian_u(double t, ConstVectorRef z, ConstVectorRef u, ConstVectorRef theta, MatrixRef J,
                  VectorRef work) const override;
  void jvp_u(double t, ConstVectorRef z, ConstVectorRef u, ConstVectorRef theta, ConstVectorRef v,
             VectorRef Jv, VectorRef work) const override;
  void vjp(double t, ConstVectorRef z, ConstVectorRef theta, ConstVectorRef a, VectorRef a_dfdz,
           VectorRef a_dfdtheta, VectorRef work) const override;
  void jacobian(double t, ConstVectorRef z, ConstVectorRef theta, MatrixRef J, VectorRef work) const override;
  void jvp(double t, ConstVectorRef z, ConstVectorRef theta, ConstVectorRef v, VectorRef Jv,
           VectorRef work) const override;

 private:
  // The methods with the network's inputs u (null: none).
  void rhs_at(double t, ConstVectorRef z, const ConstVectorRef* u, ConstVectorRef theta, VectorRef f,
              VectorRef work) const;
  void vjp_at(double t, ConstVectorRef z, const ConstVectorRef* u, ConstVectorRef theta, ConstVectorRef a,
              VectorRef a_dfdz, VectorRef a_dfdtheta, VectorRef work) const;
  void jacobian_at(double t, ConstVectorRef z, const ConstVectorRef* u, ConstVectorRef theta, MatrixRef J,
                   VectorRef work) const;
  void jvp_at(double t, ConstVectorRef z, const ConstVectorRef* u, ConstVectorRef theta, ConstVectorRef v,
              VectorRef Jv, VectorRef work) const;
  // Writes input_scale .* z[in] into the network-input buffer of work.
  void gather_input(ConstVectorRef z, double* zin) const;
  // f += S y: the network's outputs y (m) into the state's rate of change.
  void scatter(const double* y, VectorRef f) const;

  std::shared_ptr<const Dynamics> physics_, network_;
  int n_ = 0, m_ = 0, pg_ = 0, pn_ = 0;
  std::vector<int> in_, out_;
  Vector mask_, scale_;
  Matrix S_;  // the general output map, if given (then out_ and mask_ are unused)
  // Workspace: [x (m) | y (m) | Jn (m*m) | sub-workspace shared by physics and network].
  int x_off_ = 0, y_off_ = 0, jn_off_ = 0, sub_off_ = 0, sub_size_ = 0, n_work_ = 0;
};

}  // namespace cvnode
