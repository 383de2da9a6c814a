// Continuous normalizing flow dynamics: the probed fields (ProbedMlp, PlanarFlow) and the
// augmented dynamics Cnf against central finite differences, the exact trace against the
// Jacobian, and Hutchinson's estimator against the exact trace.
// ctest: labels=unit timeout=120
#define BOOST_TEST_MODULE cnf_dynamics
#include <boost/test/unit_test.hpp>

#include <cmath>
#include <functional>

#include "cvnode/cnf.h"
#include "cvnode/mlp.h"
#include "cvnode/planar_flow.h"
#include "cvnode/probed_mlp.h"
#include "test_util.h"

using namespace cvnode;
using cvnode::test::fd_gradient;
using cvnode::test::random_vector;

namespace {

const Activation kSmooth[] = {Activation::Identity, Activation::Tanh, Activation::Softplus, Activation::Sigmoid,
                              Activation::Silu};

// Fourth-order central differences with h = 1e-3: truncation ~h^4 |f^(5)| ~ 1e-12, rounding
// ~eps |S| / h ~ 1e-13; a wrong or missing term (the s'' term is O(1)) is far above 1e-8.
constexpr double kH = 1e-3;
constexpr double kTol = 1e-8;

Matrix reshape(const Vector& v, Eigen::Index r, Eigen::Index c) { return Eigen::Map<const Matrix>(v.data(), r, c); }

// S = sum Fbar . F + <G, J E> of a field, as a function of (Z, theta, E) flattened.
struct FieldCase {
  const ProbedField& f;
  Eigen::Index B, K;
  double t = 0.3;
  Matrix Z, E, Fbar, G;
  Vector theta, work;
  FieldCase(const ProbedField& field, Eigen::Index batch, Eigen::Index probes, std::uint64_t seed)
      : f(field), B(batch), K(probes) {
    const int D = f.input_size(), O = f.output_size();
    Z = reshape(random_vector(D * B, seed, 1.2), D, B);
    E = reshape(random_vector(D * B * K, seed + 1, 1.0), D, B * K);
    Fbar = reshape(random_vector(O * B, seed + 2, 1.0), O, B);
    G = reshape(random_vector(O * B * K, seed + 3, 1.0), O, B * K);
    theta = f.initial_parameters(seed + 4) + random_vector(f.param_size(), seed + 5, 0.3);
    work = Vector::Zero(f.workspace_size(static_cast<int>(B), static_cast<int>(K)));
  }
  void forward(const Matrix& z, const Vector& th, const Matrix& e, Matrix& F, Matrix& JE) {
    F.resize(f.output_size(), z.cols());
    JE.resize(f.output_size(), e.cols());
    f.forward(t, z, th, e, F, JE, work);
  }
  double S(const Matrix& z, const Vector& th, const Matrix& e) {
    Matrix F, JE;
    forward(z, th, e, F, JE);
    return (Fbar.array() * F.array()).sum() + (G.array() * JE.array()).sum();
  }
};

void check_reverse(FieldCase& c) {
  const int D = c.f.input_size();
  Matrix F, JE;
  c.forward(c.Z, c.theta, c.E, F, JE);
  Matrix Zbar(D, c.B), Ebar(D, c.B * c.K);
  Vector tbar(c.f.param_size());
  c.f.reverse(c.t, c.theta, c.E, c.Fbar, c.G, Zbar, tbar, Ebar, c.work);
  const Vector zflat = Eigen::Map<const Vector>(c.Z.data(), c.Z.size());
  const Vector eflat = Eigen::Map<const Vector>(c.E.data(), c.E.size());
  const Vector gz = fd_gradient([&](const Vector& x) { return c.S(reshape(x, D, c.B), c.theta, c.E); }, zflat, kH);
  const Vector gt = fd_gradient([&](const Vector& x) { return c.S(c.Z, x, c.E); }, c.theta, kH);
  const Vector zbar = Eigen::Map<const Vector>(Zbar.data(), Zbar.size());
  BOOST_TEST((zbar - gz).norm() <= kTol * (1 + gz.norm()));
  BOOST_TEST((tbar - gt).norm() <= kTol * (1 + gt.norm()));
  if (c.K > 0) {
    // J E is linear in E: dS/dE = J^T G exactly.
    const Vector ge =
        fd_gradient([&](const Vector& x) { return c.S(c.Z, c.theta, reshape(x, D, c.B * c.K)); }, eflat, kH);
    const Vector ebar = Eigen::Map<const Vector>(Ebar.data(), Ebar.size());
    BOOST_TEST((ebar - ge).norm() <= kTol * (1 + ge.norm()));
  }
}

// The Jacobian of a field at state b by central differences of F.
Matrix field_jacobian_fd(FieldCase& c, Eigen::Index b) {
  const int D = c.f.input_size(), O = c.f.output_size();
  Matrix J(O, D);
  for (int j = 0; j < D; ++j) {
    Matrix zp = c.Z, zm = c.Z, Fp, Fm, JE;
    zp(j, b) += 1e-6;
    zm(j, b) -= 1e-6;
    c.forward(zp, c.theta, c.E, Fp, JE);
    c.forward(zm, c.theta, c.E, Fm, JE);
    J.col(j) = (Fp.col(b) - Fm.col(b)) / 2e-6;
  }
  return J;
}

void check_probes(FieldCase& c) {
  Matrix F, JE;
  c.forward(c.Z, c.theta, c.E, F, JE);
  for (Eigen::Index b = 0; b < c.B; ++b) {
    const Matrix J = field_jacobian_fd(c, b);
    const Matrix ref = J * c.E.middleCols(b * c.K, c.K);
    // Second-order central differences with h = 1e-6: ~1e-10 absolute.
    BOOST_TEST((JE.middleCols(b * c.K, c.K) - ref).norm() <= 1e-7 * (1 + ref.norm()));
  }
}

ProbedMlpSpec mlp_spec(std::vector<int> layers, Activation a, bool time_input) {
  ProbedMlpSpec s;
  s.layers = std::move(layers);
  s.activation = a;
  s.time_input = time_input;
  return s;
}

}  // namespace

BOOST_AUTO_TEST_CASE(probed_mlp_equals_mlp_and_its_jacobian_products) {
  for (Activation a : kSmooth) {
    for (bool ti : {false, true}) {
      BOOST_TEST_CONTEXT("activation " << activation_name(a) << " time_input " << ti) {
        ProbedMlp pm(mlp_spec({3, 7, 5, 3}, a, ti));
        MlpSpec ms;
        ms.layers = {3, 7, 5, 3};
        ms.activation = a;
        ms.time_input = ti;
        Mlp mlp(ms);
        BOOST_REQUIRE(pm.param_size() == mlp.param_size());
        FieldCase c(pm, 2, 3, 11);
        Matrix F, JE;
        c.forward(c.Z, c.theta, c.E, F, JE);
        Vector w(mlp.workspace_size()), f(3);
        Matrix J(3, 3);
        for (int b = 0; b < 2; ++b) {
          mlp.rhs(c.t, c.Z.col(b), c.theta, f, w);
          BOOST_TEST((F.col(b) - f).norm() <= 1e-13 * (1 + f.norm()));
          mlp.jacobian(c.t, c.Z.col(b), c.theta, J, w);
          const Matrix ref = J * c.E.middleCols(b * 3, 3);
          BOOST_TEST((JE.middleCols(b * 3, 3) - ref).norm() <= 1e-13 * (1 + ref.norm()));
        }
      }
    }
  }
}

BOOST_AUTO_TEST_CASE(probed_mlp_reverse_matches_finite_differences) {
  std::uint64_t seed = 100;
  for (Activation a : kSmooth) {
    for (bool ti : {false, true}) {
      for (int K : {0, 1, 3}) {
        BOOST_TEST_CONTEXT("activation " << activation_name(a) << " time_input " << ti << " probes " << K) {
          ProbedMlp pm(mlp_spec({3, 6, 5, 3}, a, ti));
          FieldCase c(pm, 2, K, seed += 10);
          check_reverse(c);
        }
      }
    }
  }
  // A one-layer (linear) network, a deep one, and unequal input and output (a hypernetwork).
  for (auto layers : {std::vector<int>{2, 2}, std::vector<int>{2, 4, 4, 4, 2}, std::vector<int>{1, 4, 4, 9}}) {
    BOOST_TEST_CONTEXT("layers " << layers.size()) {
      ProbedMlp pm(mlp_spec(layers, Activation::Tanh, true));
      FieldCase c(pm, 3, layers.front() == 1 ? 0 : 2, seed += 10);
      check_reverse(c);
    }
  }
}

BOOST_AUTO_TEST_CASE(planar_flow_probes_and_reverse_match_finite_differences) {
  PlanarFlowSpec s;
  s.dim = 3;
  s.width = 5;
  s.hyper_hidden = 4;
  PlanarFlow pf(s);
  BOOST_TEST(pf.param_size() == (1 * 4 + 4) + (4 * 4 + 4) + (4 * (3 * 5 * 3 + 5) + 3 * 5 * 3 + 5));
  for (int K : {0, 1, 3}) {
    BOOST_TEST_CONTEXT("probes " << K) {
      FieldCase c(pf, 2, K, 300 + K);
      if (K > 0) check_probes(c);
      check_reverse(c);
    }
  }
}

namespace {

// The augmented dynamics against finite differences: rhs' own Jacobian and its VJP.
struct CnfCase {
  const Cnf& cnf;
  double t = 0.4;
  Vector y, theta, work;
  CnfCase(const Cnf& c, std::uint64_t seed) : cnf(c) {
    y = cnf.initial_state(random_vector(cnf.dim(), seed, 1.0), seed + 1);
    y.segment(cnf.dim(), cnf.noise_offset() - cnf.dim()) = random_vector(cnf.noise_offset() - cnf.dim(), seed + 2);
    theta = cnf.field().initial_parameters(seed + 3) + random_vector(cnf.param_size(), seed + 4, 0.3);
    work = Vector::Zero(cnf.workspace_size());
  }
  Vector rhs(const Vector& yy, const Vector& th) {
    Vector f(cnf.state_size());
    cnf.rhs(t, yy, th, f, work);
    return f;
  }
};

void check_cnf(const Cnf& cnf, std::uint64_t seed) {
  CnfCase c(cnf, seed);
  const int n = cnf.state_size(), P = cnf.param_size();
  const Vector a = random_vector(n, seed + 9, 1.0);
  Vector ay(n), ath(P);
  cnf.vjp(c.t, c.y, c.theta, a, ay, ath, c.work);
  const Vector gy = fd_gradient([&](const Vector& x) { return a.dot(c.rhs(x, c.theta)); }, c.y, kH);
  const Vector gt = fd_gradient([&](const Vector& x) { return a.dot(c.rhs(c.y, x)); }, c.theta, kH);
  BOOST_TEST((ay - gy).norm() <= kTol * (1 + gy.norm()));
  BOOST_TEST((ath - gt).norm() <= kTol * (1 + gt.norm()));
  // vjp_again after rhs at the same point.
  Vector f(n), ay2(n), ath2(P);
  cnf.rhs(c.t, c.y, c.theta, f, c.work);
  cnf.vjp_again(c.t, c.y, c.theta, a, ay2, ath2, c.work);
  BOOST_TEST((ay2 - ay).norm() <= 1e-14 * (1 + ay.norm()));
  BOOST_TEST((ath2 - ath).norm() <= 1e-14 * (1 + ath.norm()));
  // The state part alone.
  Vector ay3(n);
  Vector none(0);
  cnf.vjp(c.t, c.y, c.theta, a, ay3, none, c.work);
  BOOST_TEST((ay3 - ay).norm() <= 1e-14 * (1 + ay.norm()));
  // Jacobian rows are VJPs; the JVP is J v.
  Matrix J(n, n);
  cnf.jacobian(c.t, c.y, c.theta, J, c.work);
  BOOST_TEST((J.transpose() * a - ay).norm() <= 1e-12 * (1 + ay.norm()));
  const Vector v = random_vector(n, seed + 11, 1.0);
  Vector Jv(n);
  cnf.jvp(c.t, c.y, c.theta, v, Jv, c.work);
  BOOST_TEST((Jv - J * v).norm() <= 1e-12 * (1 + Jv.norm()));
  // Batches equal the samples one by one.
  const int B = 3;
  Matrix Y(n, B), A(n, B);
  for (int b = 0; b < B; ++b) {
    CnfCase cb(cnf, seed + 20 * b);
    Y.col(b) = cb.y;
    A.col(b) = random_vector(n, seed + 20 * b + 7, 1.0);
  }
  Vector bw(cnf.batch_workspace_size(B));
  Matrix FB(n, B), AYB(n, B);
  Vector athB(P);
  cnf.rhs_batch(c.t, Y, c.theta, FB, bw);
  cnf.vjp_batch(c.t, Y, c.theta, A, AYB, athB, bw);
  Vector sum = Vector::Zero(P);
  for (int b = 0; b < B; ++b) {
    Vector fb(n), ab(n), tb(P);
    cnf.rhs(c.t, Y.col(b), c.theta, fb, c.work);
    cnf.vjp(c.t, Y.col(b), c.theta, A.col(b), ab, tb, c.work);
    sum += tb;
    BOOST_TEST((FB.col(b) - fb).norm() <= 1e-12 * (1 + fb.norm()));
    BOOST_TEST((AYB.col(b) - ab).norm() <= 1e-12 * (1 + ab.norm()));
  }
  BOOST_TEST((athB - sum).norm() <= 1e-12 * (1 + sum.norm()));
}

}  // namespace

BOOST_AUTO_TEST_CASE(cnf_vjp_jacobian_and_batches_match_finite_differences) {
  ProbedMlp mlp(mlp_spec({3, 8, 8, 3}, Activation::Tanh, true));
  PlanarFlowSpec ps;
  ps.dim = 3;
  ps.width = 6;
  ps.hyper_hidden = 5;
  PlanarFlow planar(ps);
  std::uint64_t seed = 500;
  for (const ProbedField* field : {static_cast<const ProbedField*>(&mlp), static_cast<const ProbedField*>(&planar)}) {
    for (TraceEstimator tr : {TraceEstimator::Exact, TraceEstimator::Hutchinson}) {
      for (bool regs : {false, true}) {
        BOOST_TEST_CONTEXT("field " << (field == &mlp ? "mlp" : "planar") << " trace " << trace_estimator_name(tr)
                                    << " regularisers " << regs) {
          CnfOptions o;
          o.trace = tr;
          o.probes = 2;
          o.noise = ProbeNoise::Gaussian;
          o.kinetic = o.frobenius = regs;
          Cnf cnf(*field, o);
          check_cnf(cnf, seed += 50);
        }
      }
    }
  }
}

BOOST_AUTO_TEST_CASE(exact_trace_and_regularisers_are_the_jacobians) {
  ProbedMlp mlp(mlp_spec({4, 9, 4}, Activation::Softplus, true));
  CnfOptions o;
  o.kinetic = o.frobenius = true;
  Cnf cnf(mlp, o);
  BOOST_TEST(cnf.state_size() == 4 + 3);
  CnfCase c(cnf, 7);
  MlpSpec ms;
  ms.layers = {4, 9, 4};
  ms.activation = Activation::Softplus;
  ms.time_input = true;
  Mlp ref(ms);
  Vector w(ref.workspace_size()), f(4);
  Matrix J(4, 4);
  ref.rhs(c.t, c.y.head(4), c.theta, f, w);
  ref.jacobian(c.t, c.y.head(4), c.theta, J, w);
  const Vector rates = c.rhs(c.y, c.theta);
  BOOST_TEST((rates.head(4) - f).norm() <= 1e-13);
  BOOST_TEST(rates[4] == -J.trace(), boost::test_tools::tolerance(1e-13));
  BOOST_TEST(rates[5] == f.squaredNorm(), boost::test_tools::tolerance(1e-13));
  BOOST_TEST(rates[6] == J.squaredNorm(), boost::test_tools::tolerance(1e-13));
}

BOOST_AUTO_TEST_CASE(hutchinson_estimates_are_unbiased) {
  // Rademacher: averaging eps^T J eps over all 2^D sign vectors gives tr J exactly (the cross
  // terms cancel in pairs), and ||J eps||^2 gives ||J||_F^2: a deterministic test of the
  // estimator's mean.
  const int D = 4;
  ProbedMlp mlp(mlp_spec({D, 10, 10, D}, Activation::Tanh, true));
  CnfOptions ex;
  ex.frobenius = true;
  Cnf exact(mlp, ex);
  CnfOptions hu = ex;
  hu.trace = TraceEstimator::Hutchinson;
  Cnf hutch(mlp, hu);
  CnfCase c(exact, 3);
  const Vector ref = c.rhs(c.y, c.theta);
  Vector y = Vector::Zero(hutch.state_size()), f(hutch.state_size()), w(hutch.workspace_size());
  y.head(D) = c.y.head(D);
  double tr = 0, frob = 0;
  for (int s = 0; s < (1 << D); ++s) {
    for (int i = 0; i < D; ++i) y[hutch.noise_offset() + i] = (s >> i) & 1 ? 1.0 : -1.0;
    hutch.rhs(c.t, y, c.theta, f, w);
    tr += f[D] / (1 << D);
    frob += f[hutch.frobenius_index()] / (1 << D);
  }
  BOOST_TEST(tr == ref[D], boost::test_tools::tolerance(1e-13));
  BOOST_TEST(frob == ref[exact.frobenius_index()], boost::test_tools::tolerance(1e-13));

  // Gaussian probes drawn by the Cnf: the sample mean over N draws is within 4 standard errors
  // of the exact trace (seeded, so this is one fixed draw; a biased estimator would miss by far
  // more at N = 20000).
  CnfOptions ga = hu;
  ga.noise = ProbeNoise::Gaussian;
  Cnf gauss(mlp, ga);
  const int N = 20000;
  double m = 0, m2 = 0;
  for (int s = 0; s < N; ++s) {
    const Vector yg = gauss.initial_state(c.y.head(D), 1000 + s);
    gauss.rhs(c.t, yg, c.theta, f, w);
    m += f[D];
    m2 += f[D] * f[D];
  }
  m /= N;
  const double se = std::sqrt((m2 / N - m * m) / N);
  BOOST_TEST_MESSAGE("Gaussian Hutchinson mean " << m << " exact " << ref[D] << " standard error " << se);
  BOOST_TEST(std::abs(m - ref[D]) <= 4 * se);
  BOOST_TEST(se > 0);
  // The drawn Rademacher probes are +-1 and both signs occur.
  const Vector yr = hutch.initial_state(c.y.head(D), 77);
  const auto eps = yr.tail(D).array();
  BOOST_TEST((eps.abs() == 1.0).all());
  BOOST_TEST(eps.sum() != D * eps[0]);
}
