// Convolutional dynamics on images: the ODE block of Chen et al.'s ODE-Net classifier,
//   f(t, z) = N3(conv2(t, s(N2(conv1(t, s(N1(z)))))))
// with 3x3 convolutions (stride 1, zero padding 1) that also see a constant input channel of
// value t (the paper's "time channel"), N1..N3 group normalisations (or none) and an elementwise
// activation s (the paper's ReLU, or a smooth one).
//
// The state z of one image is H*W*C doubles with the channel fastest (pixel-major, "NHWC"), so
// that a stacked batch of images (Stacked, n x B) is one C x (B*H*W) matrix and each convolution
// is one im2col and one matrix product per chunk of images. The batched calls split the images
// into fixed chunks and run them over OpenMP threads; the parameter gradient is summed chunk by
// chunk in chunk order, so results do not depend on the number of threads.
#pragma once

#include <cstdint>
#include <string>

#include "cvnode/activation.h"
#include "cvnode/dynamics.h"

namespace cvnode {

struct ConvDynamicsSpec {
  int channels = 32;
  int height = 7, width = 7;
  // Group normalisation groups per layer (must divide channels); 0 = no normalisation.
  int groups = 32;
  bool time_channel = true;  // feed t as an extra constant input channel of both convolutions
  // ReLU as in the paper. Its kinks make f non-smooth in z, which adaptive solvers pay for in
  // small steps and multistep methods in restarts; a smooth one (softplus, tanh) does not.
  Activation activation = Activation::Relu;
  // Images per matrix product. Fixed, not derived from the thread count, because it decides the
  // products' shapes and hence the bits of the result.
  int chunk = 8;
  // OpenMP threads over the chunks; 0 = omp_get_max_threads() when the object is built. Inside
  // another parallel region the calls run on one thread. Results do not depend on it.
  int threads = 0;

  std::string validate() const;  // empty when valid
};

class ConvDynamics final : public Dynamics {
 public:
  // Throws OptionsError with ConvDynamicsSpec::validate()'s reason.
  explicit ConvDynamics(const ConvDynamicsSpec& spec);

  const ConvDynamicsSpec& spec() const { return spec_; }
  int state_size() const override { return n_; }
  int param_size() const override { return n_params_; }
  int workspace_size() const override { return batch_workspace_size(1); }
  bool smooth() const override {
    return spec_.activation != Activation::Relu && spec_.activation != Activation::Elu;
  }
  int batch_workspace_size(int batch) const override;

  // theta layout, layer by layer: [gamma1 beta1 (C each) if normalised] [W1 (C x 9C, column-major,
  // row = output channel, column = tap * C + input channel), Wt1 (C x 9) if time channel, b1 (C)]
  // [gamma2 beta2] [W2, Wt2, b2] [gamma3 beta3]. Tap = ky * 3 + kx.
  // PyTorch's defaults: weights and biases uniform in +-1/sqrt(fan_in) (fan_in = 9 (C + 1) with
  // the time channel), gamma 1, beta 0. Deterministic for a seed.
  Vector initial_parameters(std::uint64_t seed) const;

  void rhs(double t, ConstVectorRef z, ConstVectorRef theta, VectorRef f, VectorRef work) const override;
  void vjp(double t, ConstVectorRef z, ConstVectorRef theta, ConstVectorRef a, VectorRef a_dfdz,
           VectorRef a_dfdtheta, VectorRef work) const override;
  void vjp_again(double t, ConstVectorRef z, ConstVectorRef theta, ConstVectorRef a, VectorRef a_dfdz,
                 VectorRef a_dfdtheta, VectorRef work) const override;
  // Dense n x n by one tangent pass per column: for tests and small images only.
  void jacobian(double t, ConstVectorRef z, ConstVectorRef theta, MatrixRef J, VectorRef work) const override;
  void jvp(double t, ConstVectorRef z, ConstVectorRef theta, ConstVectorRef v, VectorRef Jv,
           VectorRef work) const override;

  void rhs_batch(double t, ConstMatrixRef Z, ConstVectorRef theta, MatrixRef F, VectorRef work) const override;
  void vjp_batch(double t, ConstMatrixRef Z, ConstVectorRef theta, ConstMatrixRef A, MatrixRef A_dfdz,
                 VectorRef a_dfdtheta, VectorRef work) const override;
  void vjp_batch_again(double t, ConstMatrixRef Z, ConstVectorRef theta, ConstMatrixRef A, MatrixRef A_dfdz,
                       VectorRef a_dfdtheta, VectorRef work) const override;
  void jvp_batch(double t, ConstMatrixRef Z, ConstVectorRef theta, ConstMatrixRef V, MatrixRef JV,
                 VectorRef work) const override;

  // Multiply-adds of one evaluation of f for one image (the two convolutions; the normalisations
  // and the time channel are a few per state entry). A VJP with the parameter part costs three
  // times this, without it two.
  double macs_per_eval() const;

 private:
  struct Layout;
  struct Chunk;
  // The forward pass over B = Z.cols() images into the kept buffers of `work`; F (may be null)
  // receives f.
  void forward(double t, ConstMatrixRef Z, const double* theta, MatrixRef* F, double* work) const;
  template <class Fn>
  void for_chunks(int B, double* work, bool partials, Fn&& fn) const;
  void backward(double t, ConstMatrixRef A, const double* theta, MatrixRef A_dfdz, VectorRef a_dfdtheta,
                double* work) const;
  void forward_chunk(double t, const double* theta, int b0, int nb, const double* z_in, double* out,
                     double* work, int B, double* scratch) const;
  void backward_chunk(double t, const double* theta, int b0, int nb, const double* a_in, double* out,
                      double* dtheta, double* work, int B, double* scratch) const;
  void tangent_chunk(const double* theta, int b0, int nb, const double* v_in, double* out, double* work,
                     int B, double* scratch) const;
  void activate(const double* u, long nn, double* a, double* u_keep) const;
  void activation_derivative(const double* a, const double* u, long nn, double* d, double* tmp) const;
  int chunks(int B) const { return (B + spec_.chunk - 1) / spec_.chunk; }
  long scratch_size() const;

  ConvDynamicsSpec spec_;
  int n_ = 0, n_params_ = 0, groups_ = 0;
  // theta offsets (-1 when absent): the three norms, the two convolutions
  struct NormOffsets {
    int gamma = -1, beta = -1;
  };
  struct ConvOffsets {
    int w = 0, wt = -1, b = 0;
  };
  NormOffsets norm_[3];
  ConvOffsets conv_[2];
};

}  // namespace cvnode
