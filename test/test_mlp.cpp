// Mlp: analytic VJP, Jacobian and JVP against central finite differences of the right-hand side,
// for every activation, with and without time input and the linear decay term.
// ctest: labels=unit,sanitize timeout=60
#define BOOST_TEST_MODULE mlp
#include <boost/test/unit_test.hpp>

#include "cvnode/mlp.h"
#include "nn/activation_kernels.h"

#include <cmath>
#include <cstring>
#include <iterator>
#include <limits>
#include <vector>
#include "test_util.h"

using namespace cvnode;
using cvnode::test::random_vector;

namespace {

const Activation kAll[] = {Activation::Identity, Activation::Tanh,    Activation::Relu, Activation::Softplus,
                           Activation::Sigmoid,  Activation::Silu,    Activation::Elu};

struct Case {
  Mlp mlp;
  Vector theta, z;
  double t = 0.37;
  Vector work;
  explicit Case(MlpSpec spec, std::uint64_t seed)
      : mlp(std::move(spec)),
        theta(mlp.initial_parameters(Init::Glorot, seed) + random_vector(mlp.param_size(), seed + 1, 0.2)),
        z(random_vector(mlp.state_size(), seed + 2, 1.5)),
        work(Vector::Zero(mlp.workspace_size())) {}
  Vector f(const Vector& zz, const Vector& th) {
    Vector out(mlp.state_size());
    mlp.rhs(t, zz, th, out, work);
    return out;
  }
  // df/dz at (t, z, theta) by central differences, column by column (kH is defined below).
  Matrix jacobian_fd();
};

MlpSpec spec(Activation a, bool time_input, bool decay, std::vector<int> layers = {3, 7, 5, 3}) {
  MlpSpec s;
  s.layers = std::move(layers);
  s.activation = a;
  s.time_input = time_input;
  if (decay) s.k_diag = (Vector(s.layers.front()) << 1.0, 10.0, 100.0).finished();
  return s;
}

// Central differences with h = 1e-6 have truncation ~h^2 |f'''| ~ 1e-12 and rounding
// ~eps/h ~ 1e-10 relative; 1e-7 leaves room for both and still catches any wrong term.
constexpr double kTol = 1e-7;
constexpr double kH = 1e-6;

Matrix Case::jacobian_fd() {
  const int n = mlp.state_size();
  Matrix J(n, n);
  for (int j = 0; j < n; ++j) {
    Vector zp = z, zm = z;
    zp[j] += kH;
    zm[j] -= kH;
    J.col(j) = (f(zp, theta) - f(zm, theta)) / (2 * kH);
  }
  return J;
}

}  // namespace

BOOST_AUTO_TEST_CASE(derivatives_match_finite_differences_for_every_activation) {
  std::uint64_t seed = 10;
  for (Activation a : kAll) {
    for (bool time_input : {false, true}) {
      for (bool decay : {false, true}) {
        BOOST_TEST_CONTEXT("activation " << activation_name(a) << " time_input " << time_input << " decay " << decay) {
          Case c(spec(a, time_input, decay), seed += 7);
          const int n = c.mlp.state_size(), P = c.mlp.param_size();
          const Matrix J_fd = c.jacobian_fd();
          Matrix J(n, n);
          c.mlp.jacobian(c.t, c.z, c.theta, J, c.work);
          BOOST_TEST((J - J_fd).norm() / J_fd.norm() < kTol);

          // VJP: state and parameter parts.
          const Vector a_vec = random_vector(n, seed + 3);
          Vector a_dz(n), a_dth(P);
          c.mlp.vjp(c.t, c.z, c.theta, a_vec, a_dz, a_dth, c.work);
          BOOST_TEST((a_dz - J_fd.transpose() * a_vec).norm() / (J_fd.transpose() * a_vec).norm() < kTol);
          Vector dth_fd(P);
          for (int p = 0; p < P; ++p) {
            Vector tp = c.theta, tm = c.theta;
            tp[p] += kH;
            tm[p] -= kH;
            dth_fd[p] = a_vec.dot(c.f(c.z, tp) - c.f(c.z, tm)) / (2 * kH);
          }
          BOOST_TEST((a_dth - dth_fd).norm() / dth_fd.norm() < kTol);

          // The state-only VJP gives the same state part.
          Vector a_dz2(n), none(0);
          c.mlp.vjp(c.t, c.z, c.theta, a_vec, a_dz2, none, c.work);
          BOOST_TEST((a_dz2 - a_dz).norm() <= 1e-14 * a_dz.norm());

          // JVP.
          const Vector v = random_vector(n, seed + 4);
          Vector Jv(n);
          c.mlp.jvp(c.t, c.z, c.theta, v, Jv, c.work);
          BOOST_TEST((Jv - J_fd * v).norm() / (J_fd * v).norm() < kTol);
        }
      }
    }
  }
}

BOOST_AUTO_TEST_CASE(single_layer_and_deep_networks) {
  for (std::vector<int> layers : {std::vector<int>{2, 2}, std::vector<int>{2, 16, 16, 16, 2}}) {
    MlpSpec s;
    s.layers = layers;
    s.activation = Activation::Tanh;
    Case c(s, 99);
    const int n = c.mlp.state_size();
    const Matrix J_fd = c.jacobian_fd();
    Matrix J(n, n);
    c.mlp.jacobian(c.t, c.z, c.theta, J, c.work);
    BOOST_TEST((J - J_fd).norm() / J_fd.norm() < kTol);
  }
}

BOOST_AUTO_TEST_CASE(parameter_layout_is_row_major_weights_then_bias) {
  // f(z) = W2 tanh(W1 z + b1) + b2 written out by hand for a 2-3-2 network.
  MlpSpec s;
  s.layers = {2, 3, 2};
  Mlp mlp(s);
  BOOST_TEST(mlp.param_size() == 6 + 3 + 6 + 2);
  Vector theta = random_vector(mlp.param_size(), 5);
  Eigen::Matrix<double, 3, 2, Eigen::RowMajor> W1(theta.data());
  Eigen::Vector3d b1(theta.data() + 6);
  Eigen::Matrix<double, 2, 3, Eigen::RowMajor> W2(theta.data() + 9);
  Eigen::Vector2d b2(theta.data() + 15);
  Eigen::Vector2d z(0.3, -0.8);
  Eigen::Vector2d expected = W2 * (W1 * z + b1).array().tanh().matrix() + b2;
  Vector f(2), work(mlp.workspace_size());
  mlp.rhs(0.0, z, theta, f, work);
  BOOST_TEST((f - expected).norm() < 1e-15);
}

BOOST_AUTO_TEST_CASE(initialisation_is_reproducible_from_the_seed) {
  MlpSpec s;
  s.layers = {2, 50, 2};
  Mlp mlp(s);
  for (Init scheme : {Init::Glorot, Init::He, Init::PyTorch, Init::SmallOutput}) {
    const Vector a = mlp.initial_parameters(scheme, 42), b = mlp.initial_parameters(scheme, 42);
    const Vector c = mlp.initial_parameters(scheme, 43);
    BOOST_TEST((a - b).norm() == 0.0);
    BOOST_TEST((a - c).norm() > 0.1);
  }
  // Glorot bounds: |W1| <= sqrt(6 / (2 + 50)).
  const Vector g = mlp.initial_parameters(Init::Glorot, 1);
  BOOST_TEST(g.head(100).cwiseAbs().maxCoeff() <= std::sqrt(6.0 / 52));
  BOOST_TEST(g.head(100).cwiseAbs().maxCoeff() > 0.8 * std::sqrt(6.0 / 52));
}

BOOST_AUTO_TEST_CASE(invalid_specs_are_rejected_with_a_reason) {
  MlpSpec s;
  s.layers = {2, 8, 3};
  BOOST_CHECK_EXCEPTION(Mlp{s}, std::invalid_argument, [](const std::invalid_argument& e) {
    return std::string(e.what()).find("first and last widths") != std::string::npos;
  });
  s.layers = {2};
  BOOST_CHECK_THROW(Mlp{s}, std::invalid_argument);
  s.layers = {2, 0, 2};
  BOOST_CHECK_THROW(Mlp{s}, std::invalid_argument);
  BOOST_CHECK_EXCEPTION(parse_activation("gelu"), std::invalid_argument, [](const std::invalid_argument& e) {
    return std::string(e.what()).find("'gelu'") != std::string::npos;
  });
}

BOOST_AUTO_TEST_CASE(batched_forms_equal_column_by_column_evaluation) {
  for (Activation a : kAll) {
    for (bool time_input : {false, true}) {
      BOOST_TEST_CONTEXT(activation_name(a) << " time_input " << time_input) {
        const Mlp mlp(spec(a, time_input, true));
        const int n = mlp.state_size(), P = mlp.param_size(), B = 5;
        const Vector theta = mlp.initial_parameters(Init::Glorot, 3);
        const Matrix Z = random_vector(n * B, 4).reshaped(n, B), A = random_vector(n * B, 5).reshaped(n, B);
        Vector work(mlp.batch_workspace_size(B)), w1(mlp.workspace_size());
        Matrix F(n, B), AZ(n, B), JV(n, B);
        Vector ath(P);
        mlp.rhs_batch(0.3, Z, theta, F, work);
        mlp.vjp_batch(0.3, Z, theta, A, AZ, ath, work);
        mlp.jvp_batch(0.3, Z, theta, A, JV, work);
        Vector f(n), az(n), th(P), th_sum = Vector::Zero(P), jv(n);
        for (int b = 0; b < B; ++b) {
          mlp.rhs(0.3, Z.col(b), theta, f, w1);
          BOOST_TEST((F.col(b) - f).norm() <= 1e-13 * (1 + f.norm()));
          mlp.vjp(0.3, Z.col(b), theta, A.col(b), az, th, w1);
          BOOST_TEST((AZ.col(b) - az).norm() <= 1e-13 * (1 + az.norm()));
          th_sum += th;
          mlp.jvp(0.3, Z.col(b), theta, A.col(b), jv, w1);
          BOOST_TEST((JV.col(b) - jv).norm() <= 1e-13 * (1 + jv.norm()));
        }
        BOOST_TEST((ath - th_sum).norm() <= 1e-13 * (1 + th_sum.norm()));
      }
    }
  }
}

namespace {
// Distance in units in the last place between two finite doubles of the same sign.
long ulps(double a, double b) {
  if (a == b) return 0;
  long ia, ib;
  std::memcpy(&ia, &a, 8);
  std::memcpy(&ib, &b, 8);
  return std::labs(ia - ib);
}

Eigen::ArrayXd fast_tanh(Eigen::ArrayXd u) {
  Eigen::ArrayXd x(u.size());
  cvnode::detail::fast_tanh(cvnode::detail::ArrayMap(u.data(), u.size()), cvnode::detail::ArrayMap(x.data(), x.size()));
  return x;
}

bool same_bits(double a, double b) { return std::memcmp(&a, &b, sizeof a) == 0; }
}  // namespace

BOOST_AUTO_TEST_CASE(vectorised_tanh_is_within_a_few_ulps) {
  // Logarithmic sweep from 1e-300 to 800 on both sides, plus the switch points and zero; then
  // a dense uniform sweep of [-25, 25], across both branches and the range reduction's steps.
  std::vector<double> xs = {0.0, -0.0, 0.625, -0.625, std::nextafter(0.625, 0.0), 0.5493061443340549, 20.0, 400.0, 800.0};
  for (double e = -300; e <= 2.9; e += 0.001) xs.push_back(std::pow(10.0, e)), xs.push_back(-std::pow(10.0, e));
  for (int i = 0; i <= 1000000; ++i) xs.push_back(-25.0 + 50.0 * i / 1000000);
  const Eigen::ArrayXd u = Eigen::Map<Eigen::ArrayXd>(xs.data(), xs.size()), x = fast_tanh(u);
  long worst = 0;
  double at = 0;
  for (Eigen::Index i = 0; i < u.size(); ++i) {
    const long d = ulps(x[i], std::tanh(u[i]));
    if (d > worst) worst = d, at = u[i];
  }
  BOOST_TEST_MESSAGE("fast_tanh: worst " << worst << " ulps at " << at);
  BOOST_TEST(worst <= 4, "worst " << worst << " ulps at x = " << at);
}

BOOST_AUTO_TEST_CASE(vectorised_tanh_special_values_are_exact) {
  // Signed zeros keep their sign, subnormals map to themselves, the saturated range and the
  // infinities to +-1 exactly, NaN to NaN: bit for bit what std::tanh gives.
  const double sp[] = {0.0, -0.0, 5e-324, -5e-324, 1e-310, -2.2250738585072014e-308, 1e-300, -1e-300, 1e-20,
                       19.07, -19.07, 25.0, 1e300, -1e300, std::numeric_limits<double>::max(),
                       std::numeric_limits<double>::infinity(), -std::numeric_limits<double>::infinity()};
  const Eigen::ArrayXd u = Eigen::Map<const Eigen::ArrayXd>(sp, std::size(sp)), x = fast_tanh(u);
  for (Eigen::Index i = 0; i < u.size(); ++i)
    BOOST_TEST(same_bits(x[i], std::tanh(u[i])), "tanh(" << u[i] << ") = " << x[i] << ", std::tanh " << std::tanh(u[i]));
  BOOST_TEST(std::isnan(fast_tanh(Eigen::ArrayXd::Constant(1, NAN))[0]));
  BOOST_TEST(std::isnan(fast_tanh(Eigen::ArrayXd::Constant(1, -NAN))[0]));
}

BOOST_AUTO_TEST_CASE(vectorised_tanh_does_not_depend_on_position_or_alignment) {
  // The stacked fits promise the same bits for any thread count, so an element's result must not
  // depend on whether it falls in a vector body or a tail, nor on the array's alignment: each
  // element of a 1000-long array, at four offsets from an aligned start, against the same value
  // alone and in the middle of three.
  Eigen::ArrayXd buf = 3.0 * random_vector(1003, 11, 1.0).array();
  buf[10] = -0.0, buf[20] = 1e-310, buf[30] = 0.5493061443340549, buf[40] = 30.0, buf[50] = NAN;
  long mismatches = 0;
  for (int off = 0; off <= 3; ++off) {
    Eigen::ArrayXd x(1003);
    cvnode::detail::fast_tanh(cvnode::detail::ArrayMap(buf.data() + off, 1000), cvnode::detail::ArrayMap(x.data() + off, 1000));
    for (int i = 0; i < 1000; ++i) {
      const double v = buf[off + i];
      const Eigen::ArrayXd alone = fast_tanh(Eigen::ArrayXd::Constant(1, v));
      const Eigen::ArrayXd middle = fast_tanh((Eigen::ArrayXd(3) << 0.3, v, -7.0).finished());
      if (!same_bits(alone[0], x[off + i]) || !same_bits(middle[1], x[off + i])) ++mismatches;
    }
  }
  BOOST_TEST(mismatches == 0);
}
