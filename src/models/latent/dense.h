// A feed-forward network between spaces of different sizes (the encoder's head to q(z0), the
// decoder to the observed channels, the event intensity), evaluated on the columns of a matrix,
// with its analytic backward pass. cvnode::Mlp is the square network a Dynamics needs; this one is
// not a right-hand side, so it keeps its forward values in a Tape the caller owns.
#pragma once

#include <vector>

#include "cvnode/activation.h"
#include "cvnode/mlp.h"

namespace cvnode::latent {

struct DenseSpec {
  std::vector<int> layers;  // widths from input to output, at least two
  Activation activation = Activation::Tanh;  // after every hidden layer, never after the last
};

// [in, hidden..., out]: the widths of a network with these hidden layers.
std::vector<int> layer_widths(int in, const std::vector<int>& hidden, int out);

class Dense {
 public:
  // Throws OptionsError for fewer than two widths or a width < 1.
  explicit Dense(DenseSpec spec);
  int in() const { return spec_.layers.front(); }
  int out() const { return spec_.layers.back(); }
  int param_size() const { return n_params_; }
  const DenseSpec& spec() const { return spec_; }

  // theta = [W_1 row-major, b_1, W_2, b_2, ...] (cvnode::Mlp's layout), written into `theta`
  // (param_size() long). Glorot, He, PyTorch or SmallOutput as for Mlp; deterministic in `seed`.
  void initialize(Init scheme, std::uint64_t seed, VectorRef theta) const;

  // Pre-activations and outputs of every layer for the columns of the last forward call.
  struct Tape {
    std::vector<Matrix> x;  // x[0] = input, x[l] = s(u[l]) (x[L] unused)
    std::vector<Matrix> u;  // u[l], l = 1..L; u[L] is the output
  };
  // Y = net(X) column by column (X: in x B, Y: out x B).
  void forward(ConstVectorRef theta, ConstMatrixRef X, Tape& tape, Matrix& Y) const;
  // Given G = dLoss/dY for the tape's forward call: adds dLoss/dtheta to `dtheta` and, when dX
  // is not null, writes dLoss/dX.
  void backward(ConstVectorRef theta, const Tape& tape, ConstMatrixRef G, VectorRef dtheta,
                Matrix* dX) const;

 private:
  DenseSpec spec_;
  int n_params_ = 0;
  std::vector<int> w_off_, b_off_;
};

}  // namespace cvnode::latent
