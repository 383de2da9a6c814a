// The classifier's layers outside the feature block, with their backward passes:
//  * Stem: the paper's downsampling (conv 3x3 without padding, group norm, ReLU, conv 4x4 stride
//    2, group norm, ReLU, conv 4x4 stride 2): 28 x 28 x 1 -> 6 x 6 x C;
//  * Head: group norm, ReLU, average pooling over a grid x grid partition of the feature map
//    (grid 1: the paper's global pooling), linear map to the logits, and the softmax
//    cross-entropy averaged over the minibatch.
// Both keep what their backward pass needs from the last forward pass; neither is thread-safe.
#pragma once

#include <vector>

#include "cvnode/dynamics.h"
#include "nn/conv.h"
#include "core/random.h"

namespace cvnode::detail {

class Stem {
 public:
  // groups = 0: no normalisation.
  Stem(int image_size, int channels, int groups, int chunk, int threads);
  int param_size() const { return n_params_; }
  int out_size() const { return cc_.out_size(); }      // doubles per image
  int out_image() const { return cc_.out_height(); }   // side of the output image
  // PyTorch's initialisation of theta[0, param_size()).
  void initialise(double* theta, Rng& rng) const;
  // Z (out_size x B) from images X (pixels x B), keeping the activations for backward().
  void forward(const double* theta, const Matrix& X, Matrix& Z);
  // dtheta (param_size, overwritten) from dZ, for the X of the last forward().
  void backward(const double* theta, const Matrix& dZ, double* dtheta);

 private:
  // A thread's scratch: the im2col columns, the first two maps (their outputs forward, their
  // cotangents backward) and the group-norm statistics.
  struct Scratch {
    double *cols, *a, *b, *gn;
  };
  Scratch scratch_parts(double* scratch) const;
  void forward_chunk(const double* theta, int b0, int nb, const double* x, double* z, double* scratch);
  void backward_chunk(const double* theta, int b0, int nb, const double* x, const double* dz, double* dtheta,
                      double* scratch);
  ConvGeometry ca_, cb_, cc_;
  GroupNormGeometry na_, nb_;
  bool norm_;
  int chunk_, threads_;
  int wa_, ba_, ga_, bea_, wb_, bb_, gb_, beb_, wc_, bc_, n_params_;
  long scratch_stride_ = 0;
  int batch_ = 0;
  const Matrix* x_ = nullptr;  // the images of the last forward pass
  // Per image: xhat_a, h_a (C x pixels of the first map), xhat_b, h_b, rstd_a, rstd_b.
  Vector kept_, scratch_, partials_;
  long k_xa_, k_ha_, k_xb_, k_hb_, k_ra_, k_rb_;
};

class Head {
 public:
  // A side x side feature map of `channels` channels.
  Head(int channels, int side, int groups, int grid, int classes);
  int param_size() const { return n_params_; }
  void initialise(double* theta, Rng& rng) const;
  // Logits (classes x B) of the features Z (channels*pixels x B) and the mean cross-entropy
  // against `labels`; with dZ and dtheta both non-null also dLoss/dZ and dLoss/dtheta
  // (overwritten).
  double run(const double* theta, const Matrix& Z, const std::vector<int>& labels, Matrix& logits, int& correct,
             Matrix* dZ, double* dtheta);

 private:
  GroupNormGeometry n_;
  bool norm_;
  int channels_, pixels_, classes_, features_;
  int g_, be_, w_, b_, n_params_;
  std::vector<int> cell_;   // pooling cell of each pixel
  Vector cell_weight_;      // 1 / pixels of each cell
  Vector xhat_, h_, rstd_, pooled_, prob_, dpooled_, scratch_;
};

}  // namespace cvnode::detail
