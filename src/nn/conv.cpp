#include "nn/conv.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include <Eigen/Core>

namespace cvnode::detail {

namespace {
using CMat = Eigen::Map<const Eigen::MatrixXd>;
using MMat = Eigen::Map<Eigen::MatrixXd>;
using CVec = Eigen::Map<const Eigen::VectorXd>;
using MVec = Eigen::Map<Eigen::VectorXd>;

// Calls fn(image offset in doubles, column of cols, kx_lo, kx_hi, source offset) for each row of
// taps (ky) of every output pixel: the taps kx in [kx_lo, kx_hi) read kx_hi - kx_lo consecutive
// pixels of row iy (consecutive in memory with the channel fastest); the others are padding.
template <class Fn>
void for_each_tap_row(const ConvGeometry& g, int images, Fn&& fn) {
  const int k = g.kernel, s = g.stride, p = g.pad, H = g.height, W = g.width, C = g.in_channels;
  const int Ho = g.out_height(), Wo = g.out_width();
  const long K = g.patch();
  for (int b = 0; b < images; ++b) {
    const long img = static_cast<long>(b) * g.in_size();
    for (int oy = 0; oy < Ho; ++oy) {
      for (int ox = 0; ox < Wo; ++ox) {
        const long col = ((static_cast<long>(b) * Ho + oy) * Wo + ox) * K;
        const int ix0 = ox * s - p;
        const int kx_lo = std::max(0, -ix0), kx_hi = std::min(k, W - ix0);
        for (int ky = 0; ky < k; ++ky) {
          const int iy = oy * s - p + ky;
          const bool inside = iy >= 0 && iy < H && kx_lo < kx_hi;
          const long src = inside ? img + (static_cast<long>(iy) * W + ix0 + kx_lo) * C : 0;
          fn(col + static_cast<long>(ky) * k * C, inside ? kx_lo : k, inside ? kx_hi : k, src);
        }
      }
    }
  }
}
}  // namespace

std::string ConvGeometry::validate() const {
  if (in_channels < 1 || out_channels < 1) return "a convolution needs at least one input and one output channel";
  if (kernel < 1 || stride < 1 || pad < 0) return "kernel and stride must be >= 1 and padding >= 0";
  if (height < 1 || width < 1) return "image size must be at least 1 x 1";
  if (height + 2 * pad < kernel || width + 2 * pad < kernel)
    return "kernel " + std::to_string(kernel) + " is larger than the padded image " + std::to_string(height + 2 * pad) +
           " x " + std::to_string(width + 2 * pad);
  return {};
}

std::string GroupNormGeometry::validate() const {
  if (channels < 1 || groups < 1 || pixels < 1) return "group norm needs channels, groups and pixels >= 1";
  if (channels % groups != 0)
    return "group norm: " + std::to_string(groups) + " groups do not divide " + std::to_string(channels) + " channels";
  if (!(eps > 0)) return "group norm: eps must be > 0";
  return {};
}

void im2col(const ConvGeometry& g, const double* in, int images, double* cols) {
  const int C = g.in_channels, k = g.kernel;
  for_each_tap_row(g, images, [&](long col, int lo, int hi, long src) {
    double* dst = cols + col;
    std::fill(dst, dst + lo * C, 0.0);
    if (hi > lo) std::memcpy(dst + lo * C, in + src, sizeof(double) * (hi - lo) * C);
    std::fill(dst + hi * C, dst + k * C, 0.0);
  });
}

void col2im_add(const ConvGeometry& g, const double* dcols, int images, double* in_grad) {
  const int C = g.in_channels;
  for_each_tap_row(g, images, [&](long col, int lo, int hi, long src) {
    const long len = static_cast<long>(hi - lo) * C;
    if (len > 0) MVec(in_grad + src, len) += CVec(dcols + col + lo * C, len);
  });
}

void conv_forward(const ConvGeometry& g, const double* W, const double* bias, const double* in,
                  int images, double* cols, double* out) {
  const long N = static_cast<long>(images) * g.out_pixels();
  im2col(g, in, images, cols);
  MMat Y(out, g.out_channels, N);
  Y.noalias() = CMat(W, g.out_channels, g.patch()) * CMat(cols, g.patch(), N);
  if (bias) Y.colwise() += CVec(bias, g.out_channels);
}

void conv_backward(const ConvGeometry& g, const double* W, const double* in, const double* dout,
                   int images, double* cols, bool cols_hold_input, double* dW, double* dbias,
                   double* din) {
  const long N = static_cast<long>(images) * g.out_pixels();
  CMat D(dout, g.out_channels, N);
  if (dW) {
    if (!cols_hold_input) im2col(g, in, images, cols);
    MMat(dW, g.out_channels, g.patch()).noalias() += D * CMat(cols, g.patch(), N).transpose();
  }
  if (dbias) MVec(dbias, g.out_channels) += D.rowwise().sum();
  if (din) {
    MMat(cols, g.patch(), N).noalias() = CMat(W, g.out_channels, g.patch()).transpose() * D;
    std::fill(din, din + static_cast<long>(images) * g.in_size(), 0.0);
    col2im_add(g, cols, images, din);
  }
}

void constant_channel_response(const ConvGeometry& g, const double* Wc, double* T) {
  const int k = g.kernel, Co = g.out_channels, Ho = g.out_height(), Wo = g.out_width();
  MMat Tm(T, Co, static_cast<long>(Ho) * Wo);
  CMat Wm(Wc, Co, k * k);
  Tm.setZero();
  for (int oy = 0; oy < Ho; ++oy)
    for (int ox = 0; ox < Wo; ++ox)
      for (int ky = 0; ky < k; ++ky) {
        const int iy = oy * g.stride - g.pad + ky;
        if (iy < 0 || iy >= g.height) continue;
        for (int kx = 0; kx < k; ++kx) {
          const int ix = ox * g.stride - g.pad + kx;
          if (ix >= 0 && ix < g.width) Tm.col(static_cast<long>(oy) * Wo + ox) += Wm.col(ky * k + kx);
        }
      }
}

void constant_channel_grad(const ConvGeometry& g, const double* dout, int images, double scale,
                           double* dWc) {
  const int k = g.kernel, Co = g.out_channels, Ho = g.out_height(), Wo = g.out_width();
  const long P = static_cast<long>(Ho) * Wo;
  MMat dW(dWc, Co, k * k);
  for (int ky = 0; ky < k; ++ky)
    for (int kx = 0; kx < k; ++kx) {
      auto acc = dW.col(ky * k + kx);
      for (int b = 0; b < images; ++b) {
        CMat D(dout + b * P * Co, Co, P);
        for (int oy = 0; oy < Ho; ++oy) {
          const int iy = oy * g.stride - g.pad + ky;
          if (iy < 0 || iy >= g.height) continue;
          for (int ox = 0; ox < Wo; ++ox) {
            const int ix = ox * g.stride - g.pad + kx;
            if (ix >= 0 && ix < g.width) acc += scale * D.col(static_cast<long>(oy) * Wo + ox);
          }
        }
      }
    }
}

namespace {
// s[c] <- sum over the channels of c's group of s, divided by `count`: group means broadcast
// back onto the channels.
void group_mean(const GroupNormGeometry& g, double* s, double count) {
  const int cg = g.channels / g.groups;
  for (int q = 0; q < g.groups; ++q) {
    double acc = 0;
    for (int c = q * cg; c < (q + 1) * cg; ++c) acc += s[c];
    acc /= count;
    for (int c = q * cg; c < (q + 1) * cg; ++c) s[c] = acc;
  }
}
}  // namespace

void group_norm_forward(const GroupNormGeometry& g, const double* x, const double* gamma,
                        const double* beta, int images, double* xhat, double* rstd, double* y,
                        double* scratch) {
  const int C = g.channels, P = g.pixels, cg = C / g.groups;
  const double count = static_cast<double>(cg) * P;
  double* mu = scratch;
  double* r = scratch + C;
  for (int b = 0; b < images; ++b) {
    const long off = static_cast<long>(b) * C * P;
    const double* xb = x + off;
    std::fill(mu, mu + C, 0.0);
    for (int p = 0; p < P; ++p)
      for (int c = 0; c < C; ++c) mu[c] += xb[p * C + c];
    group_mean(g, mu, count);
    std::fill(r, r + C, 0.0);
    for (int p = 0; p < P; ++p)
      for (int c = 0; c < C; ++c) {
        const double d = xb[p * C + c] - mu[c];
        r[c] += d * d;
      }
    group_mean(g, r, count);
    for (int q = 0; q < g.groups; ++q) {
      const double rs = 1.0 / std::sqrt(r[q * cg] + g.eps);
      rstd[static_cast<long>(b) * g.groups + q] = rs;
      for (int c = q * cg; c < (q + 1) * cg; ++c) r[c] = rs;
    }
    double* xh = xhat + off;
    double* yb = y + off;
    for (int p = 0; p < P; ++p)
      for (int c = 0; c < C; ++c) {
        const double v = (xb[p * C + c] - mu[c]) * r[c];
        xh[p * C + c] = v;
        yb[p * C + c] = gamma[c] * v + beta[c];
      }
  }
}

void group_norm_project(const GroupNormGeometry& g, const double* xhat, const double* rstd,
                        int images, double* u, double* scratch) {
  const int C = g.channels, P = g.pixels, cg = C / g.groups;
  const double count = static_cast<double>(cg) * P;
  double* m1 = scratch;
  double* m2 = scratch + C;
  double* r = scratch + 2 * C;
  for (int b = 0; b < images; ++b) {
    const long off = static_cast<long>(b) * C * P;
    const double* xh = xhat + off;
    double* ub = u + off;
    std::fill(m1, m1 + 2 * C, 0.0);
    for (int p = 0; p < P; ++p)
      for (int c = 0; c < C; ++c) {
        m1[c] += ub[p * C + c];
        m2[c] += ub[p * C + c] * xh[p * C + c];
      }
    group_mean(g, m1, count);
    group_mean(g, m2, count);
    for (int c = 0; c < C; ++c) r[c] = rstd[static_cast<long>(b) * g.groups + c / cg];
    for (int p = 0; p < P; ++p)
      for (int c = 0; c < C; ++c) ub[p * C + c] = r[c] * (ub[p * C + c] - m1[c] - xh[p * C + c] * m2[c]);
  }
}

void group_norm_backward(const GroupNormGeometry& g, const double* xhat, const double* rstd,
                         const double* gamma, int images, double* dy, double* dgamma,
                         double* dbeta, double* scratch) {
  const int C = g.channels, P = g.pixels;
  for (int b = 0; b < images; ++b) {
    const long off = static_cast<long>(b) * C * P;
    double* d = dy + off;
    const double* xh = xhat + off;
    for (int p = 0; p < P; ++p)
      for (int c = 0; c < C; ++c) {
        if (dgamma) dgamma[c] += d[p * C + c] * xh[p * C + c];
        if (dbeta) dbeta[c] += d[p * C + c];
        d[p * C + c] *= gamma[c];
      }
  }
  group_norm_project(g, xhat, rstd, images, dy, scratch);
}

void group_norm_tangent(const GroupNormGeometry& g, const double* xhat, const double* rstd,
                        const double* gamma, int images, double* v, double* scratch) {
  group_norm_project(g, xhat, rstd, images, v, scratch);
  const int C = g.channels;
  const long pixels = static_cast<long>(images) * g.pixels;
  for (long p = 0; p < pixels; ++p)
    for (int c = 0; c < C; ++c) v[p * C + c] *= gamma[c];
}

void relu(const double* x, long size, double* y) {
  for (long i = 0; i < size; ++i) y[i] = x[i] > 0 ? x[i] : 0.0;
}

void relu_mask(const double* y, long size, double* u) {
  for (long i = 0; i < size; ++i) u[i] = y[i] > 0 ? u[i] : 0.0;
}

}  // namespace cvnode::detail
