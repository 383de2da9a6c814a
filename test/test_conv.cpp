// Convolutional layers and ConvDynamics (the ODE-Net block): the im2col convolution against a
// naive loop implementation (forward and VJP), group norm against its definition, the dynamics
// against a naive composition, VJP and JVP against central differences, batching and thread
// counts against single images and one thread.
// ctest: labels=unit timeout=300
#define BOOST_TEST_MODULE conv
#include <boost/test/unit_test.hpp>

#include <cmath>
#include <vector>

#include "cvnode/conv_dynamics.h"
#include "cvnode/stacked.h"
#include "nn/conv.h"
#include "test_util.h"

using namespace cvnode;
using detail::ConvGeometry;
using detail::GroupNormGeometry;

namespace {

// ---- naive references: plain loops over the definition, no im2col, no products ----

// Channel-fastest index of (pixel y, x, channel c) in an image of width W and C channels.
long at(int y, int x, int c, int W, int C) { return (static_cast<long>(y) * W + x) * C + c; }

// out = conv(in) + bias + tval * (a constant channel through taps Wc), as the definition reads.
Vector naive_conv(const ConvGeometry& g, const Vector& W, const Vector& bias, const Vector& Wc, double tval,
                  const Vector& in, int images) {
  const int Ho = g.out_height(), Wo = g.out_width(), k = g.kernel, Ci = g.in_channels, Co = g.out_channels;
  Vector out = Vector::Zero(static_cast<long>(images) * g.out_size());
  for (int b = 0; b < images; ++b)
    for (int oy = 0; oy < Ho; ++oy)
      for (int ox = 0; ox < Wo; ++ox)
        for (int co = 0; co < Co; ++co) {
          double acc = bias.size() ? bias[co] : 0.0;
          for (int ky = 0; ky < k; ++ky)
            for (int kx = 0; kx < k; ++kx) {
              const int iy = oy * g.stride - g.pad + ky, ix = ox * g.stride - g.pad + kx;
              if (iy < 0 || iy >= g.height || ix < 0 || ix >= g.width) continue;
              for (int ci = 0; ci < Ci; ++ci)
                acc += W[co + Co * ((ky * k + kx) * Ci + ci)] * in[b * g.in_size() + at(iy, ix, ci, g.width, Ci)];
              if (Wc.size()) acc += tval * Wc[co + Co * (ky * k + kx)];
            }
          out[b * g.out_size() + at(oy, ox, co, Wo, Co)] = acc;
        }
  return out;
}

// The VJP of naive_conv by the same loops: din, dW, dbias, dWc.
void naive_conv_vjp(const ConvGeometry& g, const Vector& W, double tval, const Vector& in, const Vector& dout,
                    int images, Vector& din, Vector& dW, Vector& db, Vector& dWc) {
  const int Ho = g.out_height(), Wo = g.out_width(), k = g.kernel, Ci = g.in_channels, Co = g.out_channels;
  din = Vector::Zero(in.size());
  dW = Vector::Zero(W.size());
  db = Vector::Zero(Co);
  dWc = Vector::Zero(Co * k * k);
  for (int b = 0; b < images; ++b)
    for (int oy = 0; oy < Ho; ++oy)
      for (int ox = 0; ox < Wo; ++ox)
        for (int co = 0; co < Co; ++co) {
          const double d = dout[b * g.out_size() + at(oy, ox, co, Wo, Co)];
          db[co] += d;
          for (int ky = 0; ky < k; ++ky)
            for (int kx = 0; kx < k; ++kx) {
              const int iy = oy * g.stride - g.pad + ky, ix = ox * g.stride - g.pad + kx;
              if (iy < 0 || iy >= g.height || ix < 0 || ix >= g.width) continue;
              for (int ci = 0; ci < Ci; ++ci) {
                const long w = co + Co * ((ky * k + kx) * Ci + ci), x = b * g.in_size() + at(iy, ix, ci, g.width, Ci);
                din[x] += W[w] * d;
                dW[w] += in[x] * d;
              }
              dWc[co + Co * (ky * k + kx)] += tval * d;
            }
        }
}

// Group norm by its definition, one image and group at a time.
Vector naive_group_norm(const Vector& x, int C, int G, int P, const double* gamma, const double* beta, int images) {
  Vector y(x.size());
  const int cg = C / G;
  for (int b = 0; b < images; ++b)
    for (int q = 0; q < G; ++q) {
      double mean = 0, var = 0;
      for (int p = 0; p < P; ++p)
        for (int c = q * cg; c < (q + 1) * cg; ++c) mean += x[static_cast<long>(b) * C * P + p * C + c];
      mean /= cg * P;
      for (int p = 0; p < P; ++p)
        for (int c = q * cg; c < (q + 1) * cg; ++c) var += std::pow(x[static_cast<long>(b) * C * P + p * C + c] - mean, 2);
      var /= cg * P;
      for (int p = 0; p < P; ++p)
        for (int c = q * cg; c < (q + 1) * cg; ++c) {
          const long i = static_cast<long>(b) * C * P + p * C + c;
          y[i] = gamma[c] * (x[i] - mean) / std::sqrt(var + 1e-5) + beta[c];
        }
    }
  return y;
}

Vector activate(Activation a, const Vector& x) {
  switch (a) {
    case Activation::Relu: return x.cwiseMax(0.0);
    case Activation::Softplus: return x.unaryExpr([](double v) { return std::log1p(std::exp(v)); });
    case Activation::Tanh: return x.array().tanh().matrix();
    default: BOOST_FAIL("no reference for this activation");
  }
  return x;
}

// The ODE block by the naive pieces, reading theta in ConvDynamics' documented layout.
Vector naive_block(const ConvDynamicsSpec& s, double t, const Vector& z, const Vector& theta, int images) {
  const int C = s.channels, P = s.height * s.width;
  const ConvGeometry g = detail::conv_geometry(C, C, 3, 1, 1, s.height, s.width);
  const bool norm = s.groups > 0;
  long o = 0;
  auto take = [&](long size) {
    Vector v = theta.segment(o, size);
    o += size;
    return v;
  };
  auto gn = [&](const Vector& x) {
    if (!norm) return x;
    const Vector gamma = take(C), beta = take(C);
    return naive_group_norm(x, C, s.groups, P, gamma.data(), beta.data(), images);
  };
  auto conv = [&](const Vector& x) {
    const Vector W = take(9 * C * C);
    const Vector Wc = s.time_channel ? take(9 * C) : Vector();
    const Vector b = take(C);
    return naive_conv(g, W, b, Wc, t, x, images);
  };
  Vector h = activate(s.activation, gn(z));
  h = activate(s.activation, gn(conv(h)));
  h = gn(conv(h));
  BOOST_REQUIRE(o == theta.size());
  return h;
}

struct ConvCase {
  ConvGeometry g;
  int images;
};

std::vector<ConvCase> conv_cases() {
  auto make = [](int ci, int co, int k, int s, int p, int h, int w, int images) {
    return ConvCase{detail::conv_geometry(ci, co, k, s, p, h, w), images};
  };
  return {make(3, 5, 3, 1, 1, 6, 5, 2),   // the ODE block's shape
          make(1, 4, 3, 1, 0, 7, 7, 3),   // the paper's first stem layer (no padding)
          make(4, 3, 4, 2, 1, 8, 6, 2),   // its strided downsampling
          make(2, 2, 4, 2, 1, 7, 7, 1),   // odd size: the last column of taps partly outside
          make(3, 2, 1, 1, 0, 3, 4, 2),   // 1x1
          make(2, 3, 5, 1, 2, 2, 3, 2)};  // kernel larger than the image
}

}  // namespace

BOOST_AUTO_TEST_CASE(conv_matches_naive_loops) {
  int seed = 10;
  for (const ConvCase& cc : conv_cases()) {
    const ConvGeometry& g = cc.g;
    BOOST_REQUIRE(g.validate().empty());
    const Vector W = test::random_vector(g.weights(), ++seed), b = test::random_vector(g.out_channels, ++seed);
    const Vector Wc = test::random_vector(g.kernel * g.kernel * g.out_channels, ++seed);
    const Vector in = test::random_vector(cc.images * g.in_size(), ++seed);
    const Vector dout = test::random_vector(cc.images * g.out_size(), ++seed);
    const double tval = 0.7;
    Vector cols(static_cast<long>(g.patch()) * cc.images * g.out_pixels()), out(cc.images * g.out_size());
    detail::conv_forward(g, W.data(), b.data(), in.data(), cc.images, cols.data(), out.data());
    Vector T(g.out_channels * g.out_pixels());
    detail::constant_channel_response(g, Wc.data(), T.data());
    for (int i = 0; i < cc.images; ++i) out.segment(i * g.out_size(), g.out_size()) += tval * T;
    const Vector ref = naive_conv(g, W, b, Wc, tval, in, cc.images);
    BOOST_TEST((out - ref).lpNorm<Eigen::Infinity>() < 1e-13 * (1 + ref.lpNorm<Eigen::Infinity>()),
               "forward, kernel " << g.kernel << " stride " << g.stride);

    Vector din_ref, dW_ref, db_ref, dWc_ref;
    naive_conv_vjp(g, W, tval, in, dout, cc.images, din_ref, dW_ref, db_ref, dWc_ref);
    Vector din(in.size()), dW = Vector::Zero(W.size()), db = Vector::Zero(b.size()), dWc = Vector::Zero(Wc.size());
    detail::conv_backward(g, W.data(), in.data(), dout.data(), cc.images, cols.data(), false, dW.data(), db.data(),
                          din.data());
    detail::constant_channel_grad(g, dout.data(), cc.images, tval, dWc.data());
    BOOST_TEST(test::rel_err(din, din_ref) < 1e-14, "din, kernel " << g.kernel << " stride " << g.stride);
    BOOST_TEST(test::rel_err(dW, dW_ref) < 1e-14);
    BOOST_TEST(test::rel_err(db, db_ref) < 1e-14);
    BOOST_TEST(test::rel_err(dWc, dWc_ref) < 1e-14);
  }
}

BOOST_AUTO_TEST_CASE(group_norm_matches_definition_and_its_derivatives) {
  GroupNormGeometry g;
  g.channels = 6;
  g.groups = 3;
  g.pixels = 10;
  const int images = 2;
  const Vector x = test::random_vector(images * g.size(), 3), gamma = test::random_vector(6, 4),
               beta = test::random_vector(6, 5), dy = test::random_vector(images * g.size(), 6);
  Vector xhat(x.size()), y(x.size()), rstd(g.groups * images), scratch(4 * g.channels);
  detail::group_norm_forward(g, x.data(), gamma.data(), beta.data(), images, xhat.data(), rstd.data(), y.data(),
                             scratch.data());
  const Vector ref = naive_group_norm(x, 6, 3, 10, gamma.data(), beta.data(), images);
  BOOST_TEST((y - ref).lpNorm<Eigen::Infinity>() < 1e-14);
  // Backward against central differences of <dy, GN(x)> in x, gamma and beta.
  Vector dx = dy, dgamma = Vector::Zero(6), dbeta = Vector::Zero(6);
  detail::group_norm_backward(g, xhat.data(), rstd.data(), gamma.data(), images, dx.data(), dgamma.data(),
                              dbeta.data(), scratch.data());
  auto L = [&](const Vector& xx, const Vector& gg, const Vector& bb) {
    return dy.dot(naive_group_norm(xx, 6, 3, 10, gg.data(), bb.data(), images));
  };
  const Vector fx = test::fd_gradient([&](const Vector& v) { return L(v, gamma, beta); }, x, 1e-4);
  const Vector fg = test::fd_gradient([&](const Vector& v) { return L(x, v, beta); }, gamma, 1e-4);
  const Vector fb = test::fd_gradient([&](const Vector& v) { return L(x, gamma, v); }, beta, 1e-4);
  BOOST_TEST(test::rel_err(dx, fx) < 1e-9);
  BOOST_TEST(test::rel_err(dgamma, fg) < 1e-9);
  BOOST_TEST(test::rel_err(dbeta, fb) < 1e-9);
  // Tangent against central differences along a direction.
  const Vector v = test::random_vector(x.size(), 7);
  Vector jv = v;
  detail::group_norm_tangent(g, xhat.data(), rstd.data(), gamma.data(), images, jv.data(), scratch.data());
  const double h = 1e-4;
  const Vector fd = (-naive_group_norm(x + 2 * h * v, 6, 3, 10, gamma.data(), beta.data(), images) +
                     8 * naive_group_norm(x + h * v, 6, 3, 10, gamma.data(), beta.data(), images) -
                     8 * naive_group_norm(x - h * v, 6, 3, 10, gamma.data(), beta.data(), images) +
                     naive_group_norm(x - 2 * h * v, 6, 3, 10, gamma.data(), beta.data(), images)) /
                    (12 * h);
  BOOST_TEST(test::rel_err(jv, fd) < 1e-9);
}

namespace {
std::vector<ConvDynamicsSpec> block_specs() {
  std::vector<ConvDynamicsSpec> out;
  for (Activation act : {Activation::Relu, Activation::Softplus, Activation::Tanh})
    for (int groups : {2, 0})
      for (bool time : {true, false}) {
        if (act != Activation::Relu && !time) continue;
        ConvDynamicsSpec s;
        s.channels = 4;
        s.height = 5;
        s.width = 4;
        s.groups = groups;
        s.time_channel = time;
        s.activation = act;
        s.chunk = 2;
        out.push_back(s);
      }
  return out;
}
}  // namespace

BOOST_AUTO_TEST_CASE(dynamics_matches_naive_composition) {
  for (const ConvDynamicsSpec& s : block_specs()) {
    const ConvDynamics f(s);
    const int B = 3, n = f.state_size();
    Vector theta = f.initial_parameters(1);
    theta += 0.1 * test::random_vector(f.param_size(), 2);  // gamma, beta away from 1, 0
    const Vector z = test::random_vector(B * n, 3);
    Matrix F(n, B);
    Vector work(f.batch_workspace_size(B));
    f.rhs_batch(0.3, Eigen::Map<const Matrix>(z.data(), n, B), theta, F, work);
    const Vector ref = naive_block(s, 0.3, z, theta, B);
    BOOST_TEST((Eigen::Map<const Vector>(F.data(), B * n) - ref).lpNorm<Eigen::Infinity>() <
                   1e-12 * ref.lpNorm<Eigen::Infinity>(),
               "groups " << s.groups << " time " << s.time_channel << " " << activation_name(s.activation));
  }
}

BOOST_AUTO_TEST_CASE(vjp_and_jvp_match_central_differences) {
  for (const ConvDynamicsSpec& s : block_specs()) {
    const ConvDynamics f(s);
    const int n = f.state_size(), P = f.param_size();
    const Vector theta = f.initial_parameters(4) + 0.1 * test::random_vector(P, 5);
    const Vector z = test::random_vector(n, 6), a = test::random_vector(n, 7), v = test::random_vector(n, 8);
    const double t = 0.6;
    Vector work(f.workspace_size()), az(n), ath(P), fz(n);
    f.vjp(t, z, theta, a, az, ath, work);
    auto L_z = [&](const Vector& zz) {
      Vector out(n), w(f.workspace_size());
      f.rhs(t, zz, theta, out, w);
      return a.dot(out);
    };
    auto L_theta = [&](const Vector& th) {
      Vector out(n), w(f.workspace_size());
      f.rhs(t, z, th, out, w);
      return a.dot(out);
    };
    // ReLU kinks: a step of 1e-5 crosses one only if a pre-activation lies that close to 0,
    // which these seeds avoid; the 4th-order rule then leaves ~1e-10 relative error.
    const Vector gz = test::fd_gradient(L_z, z, 1e-5), gth = test::fd_gradient(L_theta, theta, 1e-5);
    BOOST_TEST(test::rel_err(az, gz) < 1e-8, "dz, groups " << s.groups << " time " << s.time_channel);
    BOOST_TEST(test::rel_err(ath, gth) < 1e-8, "dtheta, groups " << s.groups << " time " << s.time_channel);
    // The time derivative enters only through the time channel: check df/dt too (via theta's
    // linearity there is nothing to compare without the channel).
    Vector jv(n);
    f.jvp(t, z, theta, v, jv, work);
    const double h = 1e-5;
    Vector fp2(n), fp1(n), fm1(n), fm2(n);
    f.rhs(t, z + 2 * h * v, theta, fp2, work);
    f.rhs(t, z + h * v, theta, fp1, work);
    f.rhs(t, z - h * v, theta, fm1, work);
    f.rhs(t, z - 2 * h * v, theta, fm2, work);
    const Vector fd = (-fp2 + 8 * fp1 - 8 * fm1 + fm2) / (12 * h);
    BOOST_TEST(test::rel_err(jv, fd) < 1e-8, "jvp, groups " << s.groups << " time " << s.time_channel);
    // The two products are adjoint to each other at rounding level.
    Vector az_only(n), none(0);
    f.vjp(t, z, theta, a, az_only, none, work);
    BOOST_TEST(std::abs(a.dot(jv) - az_only.dot(v)) < 1e-12 * (1 + std::abs(a.dot(jv))));
    BOOST_TEST((az_only - az).norm() == 0.0);
    // The dense Jacobian is the tangent of each unit vector.
    Matrix J(n, n);
    f.jacobian(t, z, theta, J, work);
    BOOST_TEST(test::rel_err(J * v, jv) < 1e-13);
  }
}

BOOST_AUTO_TEST_CASE(batches_threads_and_reuse_agree) {
  ConvDynamicsSpec s;
  s.channels = 8;
  s.height = s.width = 5;
  s.groups = 4;
  s.chunk = 3;
  const int B = 11;  // four chunks, the last one short
  ConvDynamicsSpec s1 = s, s2 = s;
  s1.threads = 1;
  s2.threads = 2;
  const ConvDynamics f1(s1), f2(s2);
  const int n = f1.state_size(), P = f1.param_size();
  const Vector theta = f1.initial_parameters(9);
  const Matrix Z = Eigen::Map<const Matrix>(test::random_vector(n * B, 10).data(), n, B);
  const Matrix A = Eigen::Map<const Matrix>(test::random_vector(n * B, 11).data(), n, B);
  Vector w1(f1.batch_workspace_size(B)), w2(f2.batch_workspace_size(B));
  Matrix F1(n, B), F2(n, B), AZ1(n, B), AZ2(n, B), AZ3(n, B), JV1(n, B), JV2(n, B);
  Vector th1(P), th2(P), th3(P);
  f1.rhs_batch(0.25, Z, theta, F1, w1);
  f2.rhs_batch(0.25, Z, theta, F2, w2);
  BOOST_TEST((F1 - F2).norm() == 0.0);
  f1.vjp_batch(0.25, Z, theta, A, AZ1, th1, w1);
  f2.vjp_batch(0.25, Z, theta, A, AZ2, th2, w2);
  BOOST_TEST((AZ1 - AZ2).norm() == 0.0);
  BOOST_TEST((th1 - th2).norm() == 0.0);
  f2.vjp_batch_again(0.25, Z, theta, A, AZ3, th3, w2);  // the forward pass kept in w2
  BOOST_TEST((AZ3 - AZ2).norm() == 0.0);
  BOOST_TEST((th3 - th2).norm() == 0.0);
  f1.jvp_batch(0.25, Z, theta, A, JV1, w1);
  f2.jvp_batch(0.25, Z, theta, A, JV2, w2);
  BOOST_TEST((JV1 - JV2).norm() == 0.0);
  // Each column is the single-image evaluation (products of other shapes: rounding only), and
  // the batch's parameter part is the sum of the single ones.
  Vector th_sum = Vector::Zero(P), work(f1.workspace_size()), fb(n), azb(n), thb(P);
  for (int b = 0; b < B; ++b) {
    f1.rhs(0.25, Z.col(b), theta, fb, work);
    BOOST_TEST(test::rel_err(fb, F1.col(b)) < 1e-14);
    f1.vjp(0.25, Z.col(b), theta, A.col(b), azb, thb, work);
    BOOST_TEST(test::rel_err(azb, AZ1.col(b)) < 1e-14);
    th_sum += thb;
  }
  BOOST_TEST(test::rel_err(th_sum, th1) < 1e-14);
  // Through Stacked, the way the solver sees a batch of images.
  const Stacked stacked(f2, B);
  Vector sw(stacked.workspace_size()), sf(n * B);
  stacked.rhs(0.25, Eigen::Map<const Vector>(Z.data(), n * B), theta, sf, sw);
  BOOST_TEST((Eigen::Map<const Matrix>(sf.data(), n, B) - F1).norm() == 0.0);
}

BOOST_AUTO_TEST_CASE(bad_specs_are_refused_with_a_reason) {
  ConvDynamicsSpec s;
  s.channels = 6;
  s.groups = 4;
  BOOST_CHECK_EXCEPTION(ConvDynamics{s}, std::invalid_argument, [](const std::invalid_argument& e) {
    return std::string(e.what()).find("4 groups do not divide 6 channels") != std::string::npos;
  });
  s.groups = 0;
  s.chunk = 0;
  BOOST_CHECK_THROW(ConvDynamics{s}, std::invalid_argument);
}
