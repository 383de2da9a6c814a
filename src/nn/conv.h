// Building blocks of convolutional networks on image batches: 2-D convolution by im2col and one
// matrix product, group normalisation and ReLU, each with its derivatives. Used by ConvDynamics
// (the ODE block) and by the classifier's stem and head (src/models/classifier).
//
// Layout: an image of C channels and H x W pixels is H*W*C doubles with the channel fastest
// (pixel p = y * W + x holds C consecutive values). A batch of B images is then the C x (B*H*W)
// column-major matrix whose columns are pixels, which is at once
//  * the n x B matrix (n = H*W*C) of a stacked batch of states, one image a column, and
//  * the right-hand factor of a convolution's product W (C_out x k*k*C_in) * cols.
// No function allocates; scratch comes from the caller.
#pragma once

#include <string>

namespace cvnode::detail {

struct ConvGeometry {
  int in_channels = 1, out_channels = 1;
  int kernel = 3, stride = 1, pad = 1;
  int height = 1, width = 1;  // input image size

  int out_height() const { return (height + 2 * pad - kernel) / stride + 1; }
  int out_width() const { return (width + 2 * pad - kernel) / stride + 1; }
  int in_pixels() const { return height * width; }
  int out_pixels() const { return out_height() * out_width(); }
  int in_size() const { return in_pixels() * in_channels; }     // doubles per input image
  int out_size() const { return out_pixels() * out_channels; }  // doubles per output image
  // Rows of the im2col matrix: one per (tap, input channel), tap = ky * kernel + kx.
  int patch() const { return kernel * kernel * in_channels; }
  // Entries of the weight matrix (out_channels x patch, column-major).
  int weights() const { return out_channels * patch(); }
  std::string validate() const;  // empty when valid
};

inline ConvGeometry conv_geometry(int in_channels, int out_channels, int kernel, int stride, int pad, int height,
                                  int width) {
  ConvGeometry g;
  g.in_channels = in_channels;
  g.out_channels = out_channels;
  g.kernel = kernel;
  g.stride = stride;
  g.pad = pad;
  g.height = height;
  g.width = width;
  return g;
}

// cols (patch x images*out_pixels) = the input patches of `images` images, zero where a tap
// falls into the padding.
void im2col(const ConvGeometry& g, const double* in, int images, double* cols);
// in_grad += the adjoint of im2col applied to dcols (each patch entry added back to its pixel).
void col2im_add(const ConvGeometry& g, const double* dcols, int images, double* in_grad);

// out (out_channels x images*out_pixels) = W * im2col(in) + bias (bias may be null). `cols`
// receives im2col(in) (patch x images*out_pixels doubles).
void conv_forward(const ConvGeometry& g, const double* W, const double* bias, const double* in,
                  int images, double* cols, double* out);
// The linear part alone, out = W * im2col(v): the tangent of a convolution.
inline void conv_linear(const ConvGeometry& g, const double* W, const double* v, int images,
                        double* cols, double* out) {
  conv_forward(g, W, nullptr, v, images, cols, out);
}
// Backward through out = W * im2col(in) + bias for the cotangent dout:
//   dW += dout * im2col(in)^T and dbias += row sums of dout (when dW / dbias are non-null),
//   din = im2col^T(W^T dout) (overwritten; skipped when din is null).
// `cols` (patch x images*out_pixels) is scratch; when `cols_hold_input` it already holds
// im2col(in) and `in` is not read.
void conv_backward(const ConvGeometry& g, const double* W, const double* in, const double* dout,
                   int images, double* cols, bool cols_hold_input, double* dW, double* dbias,
                   double* din);

// A constant input channel of value 1 (the time channel of Chen et al.'s ODE block, scaled by t
// by the caller) seen through taps Wc (out_channels x kernel^2): T(:, p) = sum of Wc(:, tap)
// over the taps of output pixel p that fall inside the image (padding is zero).
// T is out_channels x out_pixels.
void constant_channel_response(const ConvGeometry& g, const double* Wc, double* T);
// dWc(:, tap) += scale * sum over images and output pixels p whose `tap` falls inside the image
// of dout(:, p).
void constant_channel_grad(const ConvGeometry& g, const double* dout, int images, double scale,
                           double* dWc);

// Group normalisation (Wu & He 2018) over `groups` groups of consecutive channels, statistics
// per image and group over all its pixels, then a per-channel affine map gamma * xhat + beta.
struct GroupNormGeometry {
  int channels = 1, groups = 1, pixels = 1;
  double eps = 1e-5;  // added to the variance (PyTorch's default)
  int size() const { return channels * pixels; }  // doubles per image
  std::string validate() const;
};
// y = gamma * xhat + beta with xhat = (x - mean) * rstd per group; xhat and rstd
// (groups x images) are kept for the derivatives. `scratch` holds 2 * channels doubles.
// y may alias x; xhat may not.
void group_norm_forward(const GroupNormGeometry& g, const double* x, const double* gamma,
                        const double* beta, int images, double* xhat, double* rstd, double* y,
                        double* scratch);
// u <- rstd * (u - mean(u) - xhat * mean(u * xhat)) per image and group: the Jacobian of
// x -> xhat, which is symmetric, so one function serves the tangent (u = dx) and the cotangent
// (u = gamma * dy). `scratch` holds 4 * channels doubles.
void group_norm_project(const GroupNormGeometry& g, const double* xhat, const double* rstd,
                        int images, double* u, double* scratch);
// Backward for the cotangent dy (overwritten with dL/dx): dgamma += sum dy * xhat and
// dbeta += sum dy over images and pixels (when non-null).
void group_norm_backward(const GroupNormGeometry& g, const double* xhat, const double* rstd,
                         const double* gamma, int images, double* dy, double* dgamma,
                         double* dbeta, double* scratch);
// Tangent: v (dx, overwritten with dy) <- gamma * project(v).
void group_norm_tangent(const GroupNormGeometry& g, const double* xhat, const double* rstd,
                        const double* gamma, int images, double* v, double* scratch);

// y = max(x, 0) elementwise (y may alias x).
void relu(const double* x, long size, double* y);
// u *= (y > 0): the derivative of ReLU given its output y (0 at the kink).
void relu_mask(const double* y, long size, double* u);

}  // namespace cvnode::detail
