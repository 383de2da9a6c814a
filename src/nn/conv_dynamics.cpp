#include "cvnode/conv_dynamics.h"

#include <algorithm>
#include <cmath>

#include <omp.h>

#include "cvnode/errors.h"
#include "nn/activation_kernels.h"
#include "nn/chunks.h"
#include "nn/conv.h"
#include "nn/random.h"

namespace cvnode {

namespace {
using detail::ConvGeometry;
using detail::GroupNormGeometry;
using CMat = Eigen::Map<const Eigen::MatrixXd>;
using MMat = Eigen::Map<Eigen::MatrixXd>;

// Buffers start on 64-byte boundaries (from an aligned base): Eigen's kernels round differently
// by an operand's alignment, and the bits must not depend on where a buffer sits.
long pad8(long n) { return (n + 7) / 8 * 8; }

ConvGeometry block_conv(const ConvDynamicsSpec& s) {
  ConvGeometry g;
  g.in_channels = g.out_channels = s.channels;
  g.kernel = 3;
  g.stride = 1;
  g.pad = 1;
  g.height = s.height;
  g.width = s.width;
  return g;
}

GroupNormGeometry block_norm(const ConvDynamicsSpec& s) {
  GroupNormGeometry g;
  g.channels = s.channels;
  g.groups = std::max(1, s.groups);
  g.pixels = s.height * s.width;
  return g;
}
}  // namespace

// Offsets into the workspace of a call over B images (doubles). Per image (B of each): the kept
// forward pass xhat1, a1, xhat2, a2, xhat3, u1, u2 (n each; u only for activations other than
// ReLU) and rstd1..3 (groups each); then the time
// channel's two response maps, one parameter-gradient partial per chunk, and one scratch area
// per thread (im2col columns, two chunk-sized temporaries, a staging buffer, norm scratch).
struct ConvDynamics::Layout {
  long xhat1, a1, xhat2, a2, xhat3, u1, u2, rstd1, rstd2, rstd3, tmap1, tmap2, partials, partial_stride, scratch,
      total;
  Layout(const ConvDynamics& d, int B) {
    const long n = d.n_, G = std::max(1, d.groups_), hw = static_cast<long>(d.spec_.height) * d.spec_.width;
    long o = 0;
    auto take = [&](long size) {
      const long at = o;
      o += pad8(size);
      return at;
    };
    xhat1 = take(n * B);
    a1 = take(n * B);
    xhat2 = take(n * B);
    a2 = take(n * B);
    xhat3 = take(n * B);
    // The activations' inputs, for the derivative of any activation but ReLU (whose output
    // alone tells where it is 1).
    const long u = d.spec_.activation == Activation::Relu ? 0 : n * B;
    u1 = take(u);
    u2 = take(u);
    rstd1 = take(G * B);
    rstd2 = take(G * B);
    rstd3 = take(G * B);
    tmap1 = take(d.spec_.channels * hw);
    tmap2 = take(d.spec_.channels * hw);
    partial_stride = pad8(d.n_params_);
    partials = take(partial_stride * d.chunks(B));
    scratch = take(d.scratch_size() * std::max(1, d.spec_.threads));
    total = o;
  }
};

std::string ConvDynamicsSpec::validate() const {
  if (channels < 1) return "conv dynamics: channels must be >= 1, got " + std::to_string(channels);
  if (height < 1 || width < 1)
    return "conv dynamics: image size must be at least 1 x 1, got " + std::to_string(height) + " x " + std::to_string(width);
  if (groups < 0) return "conv dynamics: groups must be >= 0 (0 = no normalisation), got " + std::to_string(groups);
  if (groups > 0 && channels % groups != 0)
    return "conv dynamics: " + std::to_string(groups) + " groups do not divide " + std::to_string(channels) + " channels";
  if (chunk < 1) return "conv dynamics: chunk must be >= 1, got " + std::to_string(chunk);
  if (threads < 0) return "conv dynamics: threads must be >= 0, got " + std::to_string(threads);
  return {};
}

ConvDynamics::ConvDynamics(const ConvDynamicsSpec& spec) : spec_(spec) {
  if (std::string why = spec_.validate(); !why.empty()) throw OptionsError(why);
  if (spec_.threads == 0) spec_.threads = std::max(1, omp_get_max_threads());
  const int C = spec_.channels;
  n_ = spec_.height * spec_.width * C;
  groups_ = spec_.groups;
  const bool norm = groups_ > 0, tc = spec_.time_channel;
  int o = 0;
  auto take = [&](int size) {
    const int at = o;
    o += size;
    return at;
  };
  if (norm) g1_ = take(C), be1_ = take(C);
  w1_ = take(9 * C * C);
  if (tc) wt1_ = take(9 * C);
  b1_ = take(C);
  if (norm) g2_ = take(C), be2_ = take(C);
  w2_ = take(9 * C * C);
  if (tc) wt2_ = take(9 * C);
  b2_ = take(C);
  if (norm) g3_ = take(C), be3_ = take(C);
  n_params_ = o;
}

long ConvDynamics::scratch_size() const {
  const long nc = static_cast<long>(n_) * spec_.chunk;
  return pad8(9L * spec_.channels * spec_.height * spec_.width * spec_.chunk) + 3 * pad8(nc) + pad8(4L * spec_.channels);
}

int ConvDynamics::batch_workspace_size(int batch) const {
  return static_cast<int>(Layout(*this, std::max(1, batch)).total);
}

double ConvDynamics::macs_per_eval() const {
  return 2.0 * spec_.height * spec_.width * spec_.channels * 9.0 * spec_.channels;
}

Vector ConvDynamics::initial_parameters(std::uint64_t seed) const {
  detail::Rng rng(seed);
  Vector theta = Vector::Zero(n_params_);
  const int C = spec_.channels;
  const double r = 1.0 / std::sqrt(9.0 * (C + (spec_.time_channel ? 1 : 0)));
  auto uniform = [&](int off, int size) {
    for (int i = 0; i < size; ++i) theta[off + i] = r * (2 * rng.uniform() - 1);
  };
  for (auto [w, wt, b] : {std::tuple{w1_, wt1_, b1_}, std::tuple{w2_, wt2_, b2_}}) {
    uniform(w, 9 * C * C);
    if (wt >= 0) uniform(wt, 9 * C);
    uniform(b, C);
  }
  for (int g : {g1_, g2_, g3_})
    if (g >= 0) theta.segment(g, C).setOnes();
  return theta;
}

// ---- one chunk of images: images b0 .. b0+nb-1 of a call over B ----

// a = s(u) for the chunk's nn entries; for activations other than ReLU u is kept at u_keep.
void ConvDynamics::activate(const double* u, long nn, double* a, double* u_keep) const {
  if (spec_.activation == Activation::Relu) {
    detail::relu(u, nn, a);
    return;
  }
  if (u_keep != u) std::copy(u, u + nn, u_keep);
  detail::activate(spec_.activation, detail::ArrayMap(u_keep, nn), detail::ArrayMap(a, nn));
}

// d *= s'(u) given a = s(u) (and u kept for activations other than ReLU); `tmp` holds nn doubles.
void ConvDynamics::activation_derivative(const double* a, const double* u, long nn, double* d, double* tmp) const {
  if (spec_.activation == Activation::Relu) {
    detail::relu_mask(a, nn, d);
    return;
  }
  detail::activate_derivative(spec_.activation, detail::ArrayMap(const_cast<double*>(u), nn),
                              detail::ArrayMap(const_cast<double*>(a), nn), detail::ArrayMap(tmp, nn));
  detail::ArrayMap(d, nn) *= detail::ArrayMap(tmp, nn);
}

void ConvDynamics::forward_chunk(double t, const double* theta, int b0, int nb, const double* z_in,
                                 double* out, double* work, int B, double* scratch) const {
  const Layout L(*this, B);
  const ConvGeometry cg = block_conv(spec_);
  const GroupNormGeometry ng = block_norm(spec_);
  const long n = n_, hw = static_cast<long>(spec_.height) * spec_.width, C = spec_.channels;
  const long nn = n * nb;
  double* cols = scratch;
  double* tmp = cols + pad8(9 * C * hw * spec_.chunk);
  double* gn = tmp + 3 * pad8(n * spec_.chunk);
  double* a1 = work + L.a1 + b0 * n;
  double* a2 = work + L.a2 + b0 * n;
  const bool norm = groups_ > 0;
  auto add_time = [&](const double* tmap) {
    if (!spec_.time_channel || t == 0) return;
    for (int b = 0; b < nb; ++b) MMat(tmp + b * n, C, hw) += t * CMat(tmap, C, hw);
  };
  double* u1 = work + L.u1 + b0 * n;
  double* u2 = work + L.u2 + b0 * n;
  const bool relu = spec_.activation == Activation::Relu;
  if (norm) {
    // the normalised values go where the activation reads them: in place for ReLU, else u1
    double* y = relu ? a1 : u1;
    detail::group_norm_forward(ng, z_in, theta + g1_, theta + be1_, nb, work + L.xhat1 + b0 * n,
                               work + L.rstd1 + b0 * groups_, y, gn);
    activate(y, nn, a1, u1);
  } else {
    activate(z_in, nn, a1, u1);
  }
  detail::conv_forward(cg, theta + w1_, theta + b1_, a1, nb, cols, tmp);
  add_time(work + L.tmap1);
  if (norm) {
    double* y = relu ? a2 : u2;
    detail::group_norm_forward(ng, tmp, theta + g2_, theta + be2_, nb, work + L.xhat2 + b0 * n,
                               work + L.rstd2 + b0 * groups_, y, gn);
    activate(y, nn, a2, u2);
  } else {
    activate(tmp, nn, a2, u2);
  }
  detail::conv_forward(cg, theta + w2_, theta + b2_, a2, nb, cols, tmp);
  add_time(work + L.tmap2);
  if (norm)
    detail::group_norm_forward(ng, tmp, theta + g3_, theta + be3_, nb, work + L.xhat3 + b0 * n,
                               work + L.rstd3 + b0 * groups_, out, gn);
  else
    std::copy(tmp, tmp + nn, out);
}

void ConvDynamics::backward_chunk(double t, const double* theta, int b0, int nb, const double* a_in,
                                  double* out, double* dtheta, double* work, int B, double* scratch) const {
  const Layout L(*this, B);
  const ConvGeometry cg = block_conv(spec_);
  const GroupNormGeometry ng = block_norm(spec_);
  const long n = n_, hw = static_cast<long>(spec_.height) * spec_.width, C = spec_.channels;
  const long nn = n * nb;
  double* cols = scratch;
  double* d1 = cols + pad8(9 * C * hw * spec_.chunk);
  double* d2 = d1 + pad8(n * spec_.chunk);
  double* gn = d1 + 3 * pad8(n * spec_.chunk);
  double* ds = d2 + pad8(n * spec_.chunk);  // the staging buffer, free until the output is written
  const double* a1 = work + L.a1 + b0 * n;
  const double* a2 = work + L.a2 + b0 * n;
  const double* u1 = work + L.u1 + b0 * n;
  const double* u2 = work + L.u2 + b0 * n;
  const bool norm = groups_ > 0, grad = dtheta != nullptr;
  auto at = [&](int off) { return grad && off >= 0 ? dtheta + off : nullptr; };
  std::copy(a_in, a_in + nn, d1);
  if (norm)
    detail::group_norm_backward(ng, work + L.xhat3 + b0 * n, work + L.rstd3 + b0 * groups_, theta + g3_, nb, d1,
                                at(g3_), at(be3_), gn);
  if (grad && spec_.time_channel) detail::constant_channel_grad(cg, d1, nb, t, dtheta + wt2_);
  detail::conv_backward(cg, theta + w2_, a2, d1, nb, cols, false, at(w2_), at(b2_), d2);
  activation_derivative(a2, u2, nn, d2, ds);
  if (norm)
    detail::group_norm_backward(ng, work + L.xhat2 + b0 * n, work + L.rstd2 + b0 * groups_, theta + g2_, nb, d2,
                                at(g2_), at(be2_), gn);
  if (grad && spec_.time_channel) detail::constant_channel_grad(cg, d2, nb, t, dtheta + wt1_);
  detail::conv_backward(cg, theta + w1_, a1, d2, nb, cols, false, at(w1_), at(b1_), d1);
  activation_derivative(a1, u1, nn, d1, ds);
  if (norm)
    detail::group_norm_backward(ng, work + L.xhat1 + b0 * n, work + L.rstd1 + b0 * groups_, theta + g1_, nb, d1,
                                at(g1_), at(be1_), gn);
  std::copy(d1, d1 + nn, out);
}

void ConvDynamics::tangent_chunk(const double* theta, int b0, int nb, const double* v_in, double* out,
                                 double* work, int B, double* scratch) const {
  const Layout L(*this, B);
  const ConvGeometry cg = block_conv(spec_);
  const GroupNormGeometry ng = block_norm(spec_);
  const long n = n_, hw = static_cast<long>(spec_.height) * spec_.width, C = spec_.channels;
  const long nn = n * nb;
  double* cols = scratch;
  double* d1 = cols + pad8(9 * C * hw * spec_.chunk);
  double* d2 = d1 + pad8(n * spec_.chunk);
  double* gn = d1 + 3 * pad8(n * spec_.chunk);
  double* ds = d2 + pad8(n * spec_.chunk);
  const bool norm = groups_ > 0;
  std::copy(v_in, v_in + nn, d1);
  if (norm)
    detail::group_norm_tangent(ng, work + L.xhat1 + b0 * n, work + L.rstd1 + b0 * groups_, theta + g1_, nb, d1, gn);
  activation_derivative(work + L.a1 + b0 * n, work + L.u1 + b0 * n, nn, d1, ds);
  detail::conv_linear(cg, theta + w1_, d1, nb, cols, d2);
  if (norm)
    detail::group_norm_tangent(ng, work + L.xhat2 + b0 * n, work + L.rstd2 + b0 * groups_, theta + g2_, nb, d2, gn);
  activation_derivative(work + L.a2 + b0 * n, work + L.u2 + b0 * n, nn, d2, ds);
  detail::conv_linear(cg, theta + w2_, d2, nb, cols, d1);
  if (norm)
    detail::group_norm_tangent(ng, work + L.xhat3 + b0 * n, work + L.rstd3 + b0 * groups_, theta + g3_, nb, d1, gn);
  std::copy(d1, d1 + nn, out);
}

// ---- whole calls: chunks over threads, inputs and outputs staged per chunk ----

// Runs fn(first image, images, scratch, staging buffer, partial) for every chunk of a call
// over B images, over the team's threads. `partial` (a zeroed parameter-sized buffer of the
// chunk) is null unless `partials`. Any thread may take any chunk: no result depends on which.
template <class Fn>
void ConvDynamics::for_chunks(int B, double* w, bool partials, Fn&& fn) const {
  const Layout L(*this, B);
  const long colsz = pad8(9L * spec_.channels * spec_.height * spec_.width * spec_.chunk);
  const long csz = pad8(static_cast<long>(n_) * spec_.chunk);
  detail::parallel_chunks(B, spec_.chunk, spec_.threads, [&](int c, int b0, int nb, int thread) {
    double* scr = w + L.scratch + thread * scratch_size();
    double* part = partials ? w + L.partials + c * L.partial_stride : nullptr;
    if (part) std::fill(part, part + n_params_, 0.0);
    fn(b0, nb, scr, scr + colsz + 2 * csz, part);
  });
}

namespace {
void stage_in(ConstMatrixRef X, int b0, int nb, long n, double* io) {
  for (int b = 0; b < nb; ++b) MMat(io + b * n, n, 1) = X.col(b0 + b);
}
void stage_out(const double* io, int b0, int nb, long n, MatrixRef Y) {
  for (int b = 0; b < nb; ++b) Y.col(b0 + b) = CMat(io + b * n, n, 1);
}
}  // namespace

void ConvDynamics::forward(double t, ConstMatrixRef Z, const double* theta, MatrixRef* F, double* w) const {
  const int B = static_cast<int>(Z.cols());
  if (spec_.time_channel) {
    const Layout L(*this, B);
    const ConvGeometry cg = block_conv(spec_);
    detail::constant_channel_response(cg, theta + wt1_, w + L.tmap1);
    detail::constant_channel_response(cg, theta + wt2_, w + L.tmap2);
  }
  for_chunks(B, w, false, [&](int b0, int nb, double* scr, double* io, double*) {
    stage_in(Z, b0, nb, n_, io);
    forward_chunk(t, theta, b0, nb, io, io, w, B, scr);
    if (F) stage_out(io, b0, nb, n_, *F);
  });
}

void ConvDynamics::backward(double t, ConstMatrixRef A, const double* theta, MatrixRef A_dfdz, VectorRef a_dfdtheta,
                            double* w) const {
  const int B = static_cast<int>(A.cols());
  const bool grad = a_dfdtheta.size() > 0;
  for_chunks(B, w, grad, [&](int b0, int nb, double* scr, double* io, double* part) {
    stage_in(A, b0, nb, n_, io);
    backward_chunk(t, theta, b0, nb, io, io, part, w, B, scr);
    stage_out(io, b0, nb, n_, A_dfdz);
  });
  if (grad) {
    // The chunks' partial gradients summed in chunk order: the same bits for any thread count.
    const Layout L(*this, B);
    detail::sum_partials(w + L.partials, L.partial_stride, chunks(B), a_dfdtheta);
  }
}

void ConvDynamics::rhs_batch(double t, ConstMatrixRef Z, ConstVectorRef theta, MatrixRef F, VectorRef work) const {
  forward(t, Z, theta.data(), &F, work.data());
}

void ConvDynamics::vjp_batch(double t, ConstMatrixRef Z, ConstVectorRef theta, ConstMatrixRef A, MatrixRef A_dfdz,
                             VectorRef a_dfdtheta, VectorRef work) const {
  forward(t, Z, theta.data(), nullptr, work.data());
  backward(t, A, theta.data(), A_dfdz, a_dfdtheta, work.data());
}

void ConvDynamics::vjp_batch_again(double t, ConstMatrixRef, ConstVectorRef theta, ConstMatrixRef A,
                                   MatrixRef A_dfdz, VectorRef a_dfdtheta, VectorRef work) const {
  backward(t, A, theta.data(), A_dfdz, a_dfdtheta, work.data());
}

void ConvDynamics::jvp_batch(double t, ConstMatrixRef Z, ConstVectorRef theta, ConstMatrixRef V, MatrixRef JV,
                             VectorRef work) const {
  const int B = static_cast<int>(Z.cols());
  double* w = work.data();
  forward(t, Z, theta.data(), nullptr, w);
  for_chunks(B, w, false, [&](int b0, int nb, double* scr, double* io, double*) {
    stage_in(V, b0, nb, n_, io);
    tangent_chunk(theta.data(), b0, nb, io, io, w, B, scr);
    stage_out(io, b0, nb, n_, JV);
  });
}

// ---- single states: a batch of one ----

void ConvDynamics::rhs(double t, ConstVectorRef z, ConstVectorRef theta, VectorRef f, VectorRef work) const {
  MMat F(f.data(), n_, 1);
  rhs_batch(t, CMat(z.data(), n_, 1), theta, F, work);
}

void ConvDynamics::vjp(double t, ConstVectorRef z, ConstVectorRef theta, ConstVectorRef a, VectorRef a_dfdz,
                       VectorRef a_dfdtheta, VectorRef work) const {
  MMat AZ(a_dfdz.data(), n_, 1);
  vjp_batch(t, CMat(z.data(), n_, 1), theta, CMat(a.data(), n_, 1), AZ, a_dfdtheta, work);
}

void ConvDynamics::vjp_again(double t, ConstVectorRef z, ConstVectorRef theta, ConstVectorRef a, VectorRef a_dfdz,
                             VectorRef a_dfdtheta, VectorRef work) const {
  MMat AZ(a_dfdz.data(), n_, 1);
  vjp_batch_again(t, CMat(z.data(), n_, 1), theta, CMat(a.data(), n_, 1), AZ, a_dfdtheta, work);
}

void ConvDynamics::jvp(double t, ConstVectorRef z, ConstVectorRef theta, ConstVectorRef v, VectorRef Jv,
                       VectorRef work) const {
  MMat JV(Jv.data(), n_, 1);
  jvp_batch(t, CMat(z.data(), n_, 1), theta, CMat(v.data(), n_, 1), JV, work);
}

void ConvDynamics::jacobian(double t, ConstVectorRef z, ConstVectorRef theta, MatrixRef J, VectorRef work) const {
  double* w = work.data();
  forward(t, CMat(z.data(), n_, 1), theta.data(), nullptr, w);
  // Column j is the tangent of the unit vector e_j, one at a time through the chunk machinery.
  for_chunks(1, w, false, [&](int, int, double* scr, double* io, double*) {
    for (int j = 0; j < n_; ++j) {
      std::fill(io, io + n_, 0.0);
      io[j] = 1.0;
      tangent_chunk(theta.data(), 0, 1, io, io, w, 1, scr);
      J.col(j) = Eigen::Map<const Vector>(io, n_);
    }
  });
}

}  // namespace cvnode
