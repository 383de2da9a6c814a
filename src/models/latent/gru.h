// The gated recurrent unit (Cho et al. 2014, in torch.nn.GRUCell's form) with its analytic
// backward pass:
//   r = sigmoid(W_ir x + b_ir + W_hr h + b_hr)        reset gate
//   u = sigmoid(W_iu x + b_iu + W_hu h + b_hu)        update gate
//   n = tanh(W_in x + b_in + r .* (W_hn h + b_hn))    candidate
//   h' = (1 - u) .* n + u .* h
// theta = [W_i (3H x I, row-major, blocks r, u, n) | W_h (3H x H) | b_i (3H) | b_h (3H)].
#pragma once

#include <cstdint>

#include "cvnode/dynamics.h"

namespace cvnode::latent {

class GruCell {
 public:
  GruCell(int input, int hidden);
  int input() const { return I_; }
  int hidden() const { return H_; }
  int param_size() const { return 3 * H_ * (I_ + H_ + 2); }
  // PyTorch's default: every entry uniform in +-1/sqrt(H), deterministic in `seed`.
  void initialize(std::uint64_t seed, VectorRef theta) const;

  // What one step keeps for its backward pass.
  struct Step {
    Vector x, h;      // inputs
    Vector r, u, n;   // gates and candidate
    Vector hn;        // W_hn h + b_hn
  };
  // h_out = GRU(x, h); fills `step`.
  void forward(ConstVectorRef theta, ConstVectorRef x, ConstVectorRef h, Step& step, Vector& h_out) const;
  // Given dh_out = dLoss/dh': writes dh = dLoss/dh, adds dLoss/dtheta to `dtheta`, and writes
  // dLoss/dx into dx when dx is not null.
  void backward(ConstVectorRef theta, const Step& step, ConstVectorRef dh_out, Vector& dh, VectorRef dtheta,
                Vector* dx) const;

 private:
  int I_, H_;
};

}  // namespace cvnode::latent
