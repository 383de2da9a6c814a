#include "models/classifier/layers.h"

#include <algorithm>
#include <cmath>

#include "nn/chunks.h"

namespace cvnode::detail {

namespace {

// PyTorch's default for Conv2d and Linear: weights and biases uniform in +-1/sqrt(fan_in).
void uniform_fan_in(double* w, long size, int fan_in, Rng& rng) {
  const double r = 1.0 / std::sqrt(static_cast<double>(fan_in));
  for (long i = 0; i < size; ++i) w[i] = r * (2 * rng.uniform() - 1);
}

ConvGeometry conv(int in, int out, int kernel, int stride, int pad, int size) {
  return conv_geometry(in, out, kernel, stride, pad, size, size);
}

GroupNormGeometry norm(int channels, int groups, int pixels) {
  GroupNormGeometry g;
  g.channels = channels;
  g.groups = std::max(1, groups);
  g.pixels = pixels;
  return g;
}
}  // namespace

// ---- Stem ----

Stem::Stem(int image_size, int channels, int groups, int chunk, int threads)
    : norm_(groups > 0), chunk_(chunk), threads_(std::max(1, threads)) {
  const int C = channels;
  ca_ = conv(1, C, 3, 1, 0, image_size);
  cb_ = conv(C, C, 4, 2, 1, ca_.out_height());
  cc_ = conv(C, C, 4, 2, 1, cb_.out_height());
  na_ = norm(C, groups, ca_.out_pixels());
  nb_ = norm(C, groups, cb_.out_pixels());
  Offsets o;
  wa_ = o.take(ca_.weights());
  ba_ = o.take(C);
  ga_ = norm_ ? o.take(C) : -1;
  bea_ = norm_ ? o.take(C) : -1;
  wb_ = o.take(cb_.weights());
  bb_ = o.take(C);
  gb_ = norm_ ? o.take(C) : -1;
  beb_ = norm_ ? o.take(C) : -1;
  wc_ = o.take(cc_.weights());
  bc_ = o.take(C);
  n_params_ = static_cast<int>(o.size);
  const long cols = std::max({static_cast<long>(ca_.patch()) * ca_.out_pixels(), static_cast<long>(cb_.patch()) * cb_.out_pixels(),
                              static_cast<long>(cc_.patch()) * cc_.out_pixels()});
  scratch_stride_ = pad8(cols * chunk_) + pad8(static_cast<long>(ca_.out_size()) * chunk_) +
                    pad8(static_cast<long>(cb_.out_size()) * chunk_) + pad8(4L * C);
}

void Stem::initialise(double* theta, Rng& rng) const {
  const int C = ca_.out_channels;
  for (auto [g, w, b] : {std::tuple{&ca_, wa_, ba_}, std::tuple{&cb_, wb_, bb_}, std::tuple{&cc_, wc_, bc_}}) {
    uniform_fan_in(theta + w, g->weights(), g->patch(), rng);
    uniform_fan_in(theta + b, C, g->patch(), rng);
  }
  for (int g : {ga_, gb_})
    if (g >= 0) std::fill(theta + g, theta + g + C, 1.0);
  for (int b : {bea_, beb_})
    if (b >= 0) std::fill(theta + b, theta + b + C, 0.0);
}

Stem::Scratch Stem::scratch_parts(double* scratch) const {
  const long sa = ca_.out_size(), sb = cb_.out_size();
  Scratch p;
  p.cols = scratch;
  p.a = p.cols + (scratch_stride_ - pad8(sa * chunk_) - pad8(sb * chunk_) - pad8(4L * ca_.out_channels));
  p.b = p.a + pad8(sa * chunk_);
  p.gn = p.b + pad8(sb * chunk_);
  return p;
}

void Stem::forward_chunk(const double* theta, int b0, int nb, const double* x, double* z, double* scratch) {
  const long sa = ca_.out_size(), sb = cb_.out_size();
  const Scratch p = scratch_parts(scratch);
  double *cols = p.cols, *ua = p.a, *ub = p.b, *gn = p.gn;
  double* ha = kept_.data() + k_ha_ + b0 * sa;
  double* hb = kept_.data() + k_hb_ + b0 * sb;
  conv_forward(ca_, theta + wa_, theta + ba_, x, nb, cols, ua);
  if (norm_)
    group_norm_forward(na_, ua, theta + ga_, theta + bea_, nb, kept_.data() + k_xa_ + b0 * sa,
                       kept_.data() + k_ra_ + static_cast<long>(b0) * na_.groups, ha, gn);
  relu(norm_ ? ha : ua, nb * sa, ha);
  conv_forward(cb_, theta + wb_, theta + bb_, ha, nb, cols, ub);
  if (norm_)
    group_norm_forward(nb_, ub, theta + gb_, theta + beb_, nb, kept_.data() + k_xb_ + b0 * sb,
                       kept_.data() + k_rb_ + static_cast<long>(b0) * nb_.groups, hb, gn);
  relu(norm_ ? hb : ub, nb * sb, hb);
  conv_forward(cc_, theta + wc_, theta + bc_, hb, nb, cols, z);
}

void Stem::forward(const double* theta, const Matrix& X, Matrix& Z) {
  const int B = static_cast<int>(X.cols());
  const long sa = ca_.out_size(), sb = cb_.out_size();
  if (B != batch_) {
    batch_ = B;
    Offsets o(8);
    k_xa_ = o.take(sa * B);
    k_ha_ = o.take(sa * B);
    k_xb_ = o.take(sb * B);
    k_hb_ = o.take(sb * B);
    k_ra_ = o.take(static_cast<long>(na_.groups) * B);
    k_rb_ = o.take(static_cast<long>(nb_.groups) * B);
    kept_.resize(o.size);
    scratch_.resize(scratch_stride_ * threads_);
    partials_.resize(pad8(n_params_) * ((B + chunk_ - 1) / chunk_));
  }
  x_ = &X;
  Z.resize(out_size(), B);
  parallel_chunks(B, chunk_, threads_, [&](int, int b0, int nb, int thread) {
    forward_chunk(theta, b0, nb, X.data() + static_cast<long>(b0) * X.rows(), Z.data() + static_cast<long>(b0) * out_size(),
                  scratch_.data() + thread * scratch_stride_);
  });
}

void Stem::backward_chunk(const double* theta, int b0, int nb, const double* x, const double* dz, double* dtheta,
                          double* scratch) {
  const long sa = ca_.out_size(), sb = cb_.out_size();
  const Scratch p = scratch_parts(scratch);
  double *cols = p.cols, *da = p.a, *db = p.b, *gn = p.gn;
  const double* ha = kept_.data() + k_ha_ + b0 * sa;
  const double* hb = kept_.data() + k_hb_ + b0 * sb;
  auto at = [&](int off) { return off >= 0 ? dtheta + off : nullptr; };
  conv_backward(cc_, theta + wc_, hb, dz, nb, cols, false, dtheta + wc_, dtheta + bc_, db);
  relu_mask(hb, nb * sb, db);
  if (norm_)
    group_norm_backward(nb_, kept_.data() + k_xb_ + b0 * sb, kept_.data() + k_rb_ + static_cast<long>(b0) * nb_.groups,
                        theta + gb_, nb, db, at(gb_), at(beb_), gn);
  conv_backward(cb_, theta + wb_, ha, db, nb, cols, false, dtheta + wb_, dtheta + bb_, da);
  relu_mask(ha, nb * sa, da);
  if (norm_)
    group_norm_backward(na_, kept_.data() + k_xa_ + b0 * sa, kept_.data() + k_ra_ + static_cast<long>(b0) * na_.groups,
                        theta + ga_, nb, da, at(ga_), at(bea_), gn);
  conv_backward(ca_, theta + wa_, x, da, nb, cols, false, dtheta + wa_, dtheta + ba_, nullptr);
}

void Stem::backward(const double* theta, const Matrix& dZ, double* dtheta) {
  const int B = batch_;
  const long stride = pad8(n_params_);
  parallel_chunks(B, chunk_, threads_, [&](int c, int b0, int nb, int thread) {
    double* part = partials_.data() + c * stride;
    std::fill(part, part + n_params_, 0.0);
    backward_chunk(theta, b0, nb, x_->data() + static_cast<long>(b0) * x_->rows(),
                   dZ.data() + static_cast<long>(b0) * out_size(), part, scratch_.data() + thread * scratch_stride_);
  });
  sum_partials(partials_.data(), stride, (B + chunk_ - 1) / chunk_, Eigen::Map<Vector>(dtheta, n_params_));
}

// ---- Head ----

Head::Head(int channels, int side, int groups, int grid, int classes)
    : n_(norm(channels, groups, side * side)), norm_(groups > 0), channels_(channels), pixels_(side * side),
      classes_(classes), features_(channels * grid * grid) {
  // Row y of the map falls into cell row y * grid / side (cells of near-equal size).
  cell_.resize(pixels_);
  cell_weight_.setZero(grid * grid);
  for (int y = 0; y < side; ++y)
    for (int x = 0; x < side; ++x) {
      cell_[y * side + x] = (y * grid / side) * grid + x * grid / side;
      cell_weight_[cell_[y * side + x]] += 1;
    }
  cell_weight_ = cell_weight_.cwiseInverse();
  Offsets o;
  g_ = norm_ ? o.take(channels) : -1;
  be_ = norm_ ? o.take(channels) : -1;
  w_ = o.take(static_cast<long>(classes) * features_);
  b_ = o.take(classes);
  n_params_ = static_cast<int>(o.size);
  const long n = static_cast<long>(channels) * pixels_;
  xhat_.resize(n);
  h_.resize(n);
  rstd_.resize(n_.groups);
  pooled_.resize(features_);
  dpooled_.resize(features_);
  prob_.resize(classes);
  scratch_.resize(4 * channels);
}

void Head::initialise(double* theta, Rng& rng) const {
  if (norm_) {
    std::fill(theta + g_, theta + g_ + channels_, 1.0);
    std::fill(theta + be_, theta + be_ + channels_, 0.0);
  }
  uniform_fan_in(theta + w_, static_cast<long>(classes_) * features_, features_, rng);
  uniform_fan_in(theta + b_, classes_, features_, rng);
}

double Head::run(const double* theta, const Matrix& Z, const std::vector<int>& labels, Matrix& logits, int& correct,
                 Matrix* dZ, double* dtheta) {
  const int B = static_cast<int>(Z.cols()), C = channels_, P = pixels_;
  const long n = static_cast<long>(C) * P;
  Eigen::Map<const Matrix> W(theta + w_, classes_, features_);
  Eigen::Map<Matrix> pooled(pooled_.data(), C, features_ / C), dpooled(dpooled_.data(), C, features_ / C);
  Eigen::Map<const Vector> bias(theta + b_, classes_);
  logits.resize(classes_, B);
  if (dZ && dtheta) {
    dZ->resize(n, B);
    std::fill(dtheta, dtheta + n_params_, 0.0);
  }
  const bool grad = dZ && dtheta;
  double loss = 0;
  correct = 0;
  // Image by image in order: the sums over the batch are in a fixed order, and each image's
  // buffers are reused at once.
  for (int b = 0; b < B; ++b) {
    if (norm_)
      group_norm_forward(n_, Z.col(b).data(), theta + g_, theta + be_, 1, xhat_.data(), rstd_.data(), h_.data(),
                         scratch_.data());
    relu(norm_ ? h_.data() : Z.col(b).data(), n, h_.data());
    pooled.setZero();
    for (int p = 0; p < P; ++p) pooled.col(cell_[p]) += Eigen::Map<const Vector>(h_.data() + static_cast<long>(p) * C, C);
    pooled *= cell_weight_.asDiagonal();
    logits.col(b).noalias() = W * pooled_;
    logits.col(b) += bias;
    // log-sum-exp with the maximum factored out
    Eigen::Index arg = 0;
    const double top = logits.col(b).maxCoeff(&arg);
    prob_ = (logits.col(b).array() - top).exp();
    const double sum = prob_.sum();
    const int y = labels[b];
    loss += std::log(sum) + top - logits(y, b);
    if (arg == y) ++correct;
    if (!grad) continue;
    // dLoss/dlogits = (softmax - onehot) / B
    prob_ /= sum;
    prob_[y] -= 1.0;
    prob_ /= B;
    Eigen::Map<Matrix>(dtheta + w_, classes_, features_).noalias() += prob_ * pooled_.transpose();
    Eigen::Map<Vector>(dtheta + b_, classes_) += prob_;
    dpooled_.noalias() = W.transpose() * prob_;
    double* d = dZ->col(b).data();
    dpooled *= cell_weight_.asDiagonal();
    for (int p = 0; p < P; ++p) Eigen::Map<Vector>(d + static_cast<long>(p) * C, C) = dpooled.col(cell_[p]);
    relu_mask(h_.data(), n, d);
    if (norm_)
      group_norm_backward(n_, xhat_.data(), rstd_.data(), theta + g_, 1, d, dtheta + g_, dtheta + be_, scratch_.data());
  }
  return loss / B;
}

}  // namespace cvnode::detail
