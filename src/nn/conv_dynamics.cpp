#include "cvnode/conv_dynamics.h"

#include <algorithm>
#include <cmath>

#include <omp.h>

#include "cvnode/errors.h"
#include "nn/activation_kernels.h"
#include "nn/chunks.h"
#include "nn/conv.h"
#include "core/random.h"

namespace cvnode {

namespace {
using detail::ConvGeometry;
using detail::GroupNormGeometry;
using CMat = Eigen::Map<const Eigen::MatrixXd>;
using MMat = Eigen::Map<Eigen::MatrixXd>;

using detail::pad8;  // buffers on 64-byte boundaries (detail::Offsets says why)

ConvGeometry block_conv(const ConvDynamicsSpec& s) {
  return detail::conv_geometry(s.channels, s.channels, 3, 1, 1, s.height, s.width);
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
// forward pass, xhat and rstd of the three norms (n and groups each), the two activations' outputs
// a and inputs u (n each; u only for activations other than ReLU); then the time
// channel's two response maps, one parameter-gradient partial per chunk, and one scratch area
// per thread (im2col columns, two chunk-sized temporaries, a staging buffer, norm scratch).
struct ConvDynamics::Layout {
  long xhat[3], rstd[3], a[2], u[2], tmap[2], partials, partial_stride, scratch, total;
  Layout(const ConvDynamics& d, int B) {
    const long n = d.n_, G = std::max(1, d.groups_), hw = static_cast<long>(d.spec_.height) * d.spec_.width;
    // The activations' inputs are kept for the derivative of any activation but ReLU (whose
    // output alone tells where it is 1).
    const long u_size = d.spec_.activation == Activation::Relu ? 0 : n * B;
    detail::Offsets o(8);
    for (int k = 0; k < 3; ++k) xhat[k] = o.take(n * B), rstd[k] = o.take(G * B);
    for (int k = 0; k < 2; ++k) a[k] = o.take(n * B), u[k] = o.take(u_size), tmap[k] = o.take(d.spec_.channels * hw);
    partial_stride = pad8(d.n_params_);
    partials = o.take(partial_stride * d.chunks(B));
    scratch = o.take(d.scratch_size() * std::max(1, d.spec_.threads));
    total = o.size;
  }
};

// What a chunk's forward, backward and tangent pass share: the layout of the call over B images,
// the geometries, the chunk's offsets into the per-image buffers, and the thread's scratch area:
// im2col columns, then three chunk-sized buffers d1, d2, ds (ds doubles as the staging buffer of
// inputs and outputs, free in between), then the norms' scratch.
struct ConvDynamics::Chunk {
  Layout L;
  ConvGeometry cg;
  GroupNormGeometry ng;
  long hw, nn, at, at_g;
  double *d1, *d2, *ds, *gn;
  Chunk(const ConvDynamics& d, int B, int b0, int nb, double* scratch)
      : L(d, B), cg(block_conv(d.spec_)), ng(block_norm(d.spec_)) {
    hw = static_cast<long>(d.spec_.height) * d.spec_.width;
    nn = static_cast<long>(d.n_) * nb;
    at = static_cast<long>(b0) * d.n_;
    at_g = static_cast<long>(b0) * std::max(1, d.groups_);
    const long chunk = pad8(static_cast<long>(d.n_) * d.spec_.chunk);
    d1 = scratch + pad8(9L * d.spec_.channels * hw * d.spec_.chunk);
    d2 = d1 + chunk;
    ds = d2 + chunk;
    gn = ds + chunk;
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
  detail::Offsets o;
  for (int k = 0; k < 3; ++k) {
    if (groups_ > 0) norm_[k].gamma = o.take(C), norm_[k].beta = o.take(C);
    if (k == 2) break;
    conv_[k].w = o.take(9 * C * C);
    if (spec_.time_channel) conv_[k].wt = o.take(9 * C);
    conv_[k].b = o.take(C);
  }
  n_params_ = static_cast<int>(o.size);
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
  for (const ConvOffsets& c : conv_) {
    uniform(c.w, 9 * C * C);
    if (c.wt >= 0) uniform(c.wt, 9 * C);
    uniform(c.b, C);
  }
  for (const NormOffsets& g : norm_)
    if (g.gamma >= 0) theta.segment(g.gamma, C).setOnes();
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
  const Chunk k_(*this, B, b0, nb, scratch);
  const Layout& L = k_.L;
  const ConvGeometry& cg = k_.cg;
  const GroupNormGeometry& ng = k_.ng;
  const long n = n_, hw = k_.hw, C = spec_.channels, nn = k_.nn, at = k_.at, at_g = k_.at_g;
  double* cols = scratch;
  double* tmp = k_.d1;
  double* gn = k_.gn;
  const bool norm = groups_ > 0, relu = spec_.activation == Activation::Relu;
  const double* x = z_in;
  for (int k = 0; k < 2; ++k) {
    double* a = work + L.a[k] + at;
    double* u = work + L.u[k] + at;
    if (norm) {
      // the normalised values go where the activation reads them: in place for ReLU, else u
      double* y = relu ? a : u;
      detail::group_norm_forward(ng, x, theta + norm_[k].gamma, theta + norm_[k].beta, nb, work + L.xhat[k] + at,
                                 work + L.rstd[k] + at_g, y, gn);
      x = y;
    }
    activate(x, nn, a, u);
    detail::conv_forward(cg, theta + conv_[k].w, theta + conv_[k].b, a, nb, cols, tmp);
    if (spec_.time_channel && t != 0)
      for (int b = 0; b < nb; ++b) MMat(tmp + b * n, C, hw) += t * CMat(work + L.tmap[k], C, hw);
    x = tmp;
  }
  if (norm)
    detail::group_norm_forward(ng, tmp, theta + norm_[2].gamma, theta + norm_[2].beta, nb, work + L.xhat[2] + at,
                               work + L.rstd[2] + at_g, out, gn);
  else
    std::copy(tmp, tmp + nn, out);
}

void ConvDynamics::backward_chunk(double t, const double* theta, int b0, int nb, const double* a_in,
                                  double* out, double* dtheta, double* work, int B, double* scratch) const {
  const Chunk k_(*this, B, b0, nb, scratch);
  const Layout& L = k_.L;
  const long nn = k_.nn, at = k_.at, at_g = k_.at_g;
  double *d1 = k_.d1, *d2 = k_.d2;
  const bool norm = groups_ > 0, grad = dtheta != nullptr;
  auto param = [&](int off) { return grad && off >= 0 ? dtheta + off : nullptr; };
  auto norm_backward = [&](int k, double* d) {
    if (norm)
      detail::group_norm_backward(k_.ng, work + L.xhat[k] + at, work + L.rstd[k] + at_g, theta + norm_[k].gamma, nb, d,
                                  param(norm_[k].gamma), param(norm_[k].beta), k_.gn);
  };
  std::copy(a_in, a_in + nn, d1);
  norm_backward(2, d1);
  for (int k = 1; k >= 0; --k) {
    const double* a = work + L.a[k] + at;
    if (grad && spec_.time_channel) detail::constant_channel_grad(k_.cg, d1, nb, t, dtheta + conv_[k].wt);
    detail::conv_backward(k_.cg, theta + conv_[k].w, a, d1, nb, scratch, false, param(conv_[k].w), param(conv_[k].b), d2);
    activation_derivative(a, work + L.u[k] + at, nn, d2, k_.ds);
    norm_backward(k, d2);
    std::swap(d1, d2);
  }
  std::copy(d1, d1 + nn, out);
}

void ConvDynamics::tangent_chunk(const double* theta, int b0, int nb, const double* v_in, double* out,
                                 double* work, int B, double* scratch) const {
  const Chunk k_(*this, B, b0, nb, scratch);
  const Layout& L = k_.L;
  const long nn = k_.nn, at = k_.at, at_g = k_.at_g;
  double *d1 = k_.d1, *d2 = k_.d2;
  auto norm_tangent = [&](int k, double* v) {
    if (groups_ > 0)
      detail::group_norm_tangent(k_.ng, work + L.xhat[k] + at, work + L.rstd[k] + at_g, theta + norm_[k].gamma, nb, v, k_.gn);
  };
  std::copy(v_in, v_in + nn, d1);
  for (int k = 0; k < 2; ++k) {
    norm_tangent(k, d1);
    activation_derivative(work + L.a[k] + at, work + L.u[k] + at, nn, d1, k_.ds);
    detail::conv_linear(k_.cg, theta + conv_[k].w, d1, nb, scratch, d2);
    std::swap(d1, d2);
  }
  norm_tangent(2, d1);
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
    for (int k = 0; k < 2; ++k) detail::constant_channel_response(cg, theta + conv_[k].wt, w + L.tmap[k]);
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
