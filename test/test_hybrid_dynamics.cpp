// Derivatives of every physics Dynamics (linear decay, mass action, Robertson by hand, by
// AutoDiff and as a mass-action network, constrained parameters, Hybrid couplings) against
// fourth-order central finite differences; consistency of Jacobian, VJP and JVP; the meaning of
// each term; and heap allocations per call, counted by interposing malloc in this binary.
// ctest: labels=unit,sanitize timeout=60
#define BOOST_TEST_MODULE hybrid_dynamics
#include <boost/test/unit_test.hpp>

#include <atomic>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <functional>
#include <memory>

#include "cvnode/cvnode.h"
#include "cvnode/autodiff_dynamics.h"
#include "cvnode/hybrid.h"
#include "cvnode/linear_decay.h"
#include "cvnode/mass_action.h"
#include "cvnode/parameter_transform.h"
#include "cvnode/physics.h"  // cvnode::Robertson, hand-written (the data layer's)
#include "test_util.h"

// ---- Counting allocator: every malloc family call of this process goes through here. ----------
// Not under AddressSanitizer, which must own malloc itself: the allocation checks are skipped there.
#if defined(__SANITIZE_ADDRESS__)
#define CVNODE_COUNT_MALLOC 0
#else
#define CVNODE_COUNT_MALLOC 1
#endif
namespace {
std::atomic<long> g_allocs{0};
}
#if CVNODE_COUNT_MALLOC
extern "C" {
void* __libc_malloc(size_t);
void* __libc_calloc(size_t, size_t);
void* __libc_realloc(void*, size_t);
void* __libc_memalign(size_t, size_t);
}
extern "C" {
void* malloc(size_t n) noexcept {
  g_allocs.fetch_add(1, std::memory_order_relaxed);
  return __libc_malloc(n);
}
void* calloc(size_t a, size_t b) noexcept {
  g_allocs.fetch_add(1, std::memory_order_relaxed);
  return __libc_calloc(a, b);
}
void* realloc(void* p, size_t n) noexcept {
  g_allocs.fetch_add(1, std::memory_order_relaxed);
  return __libc_realloc(p, n);
}
int posix_memalign(void** p, size_t align, size_t n) noexcept {
  g_allocs.fetch_add(1, std::memory_order_relaxed);
  *p = __libc_memalign(align, n);
  return *p ? 0 : ENOMEM;
}
void* aligned_alloc(size_t align, size_t n) noexcept {
  g_allocs.fetch_add(1, std::memory_order_relaxed);
  return __libc_memalign(align, n);
}
}
#endif

using namespace cvnode;
using cvnode::test::random_vector;

namespace {

// Fourth-order central difference with a per-coordinate step h_j = rel * max(|x_j|, floor):
// relative steps keep the truncation error uniform across parameters spanning 0.04 .. 3e7.
Matrix fd_jacobian(const std::function<Vector(const Vector&)>& F, const Vector& x, double rel, double floor) {
  const Vector f0 = F(x);
  Matrix J(f0.size(), x.size());
  for (int j = 0; j < x.size(); ++j) {
    const double h = rel * std::max(std::abs(x[j]), floor);
    auto at = [&](double s) {
      Vector y = x;
      y[j] += s * h;
      return F(y);
    };
    J.col(j) = (-at(2) + 8 * at(1) - 8 * at(-1) + at(-2)) / (12 * h);
  }
  return J;
}

double rel(const Matrix& a, const Matrix& ref) {
  const double d = ref.norm();
  return d == 0 ? a.norm() : (a - ref).norm() / d;
}

struct Measured {
  double jac_fd = 0, vjp_theta_fd = 0, vjp_z = 0, jvp = 0;
  long allocs = 0;  // over one call of each method after a warm-up
};

// Checks d at (t, z, theta) and returns the errors it measured.
Measured check_dynamics(const char* name, const Dynamics& d, double t, const Vector& z, const Vector& theta,
                        double fd_rel = 1e-3, double fd_floor = 1e-3, double bound = 1e-8) {
  BOOST_TEST_CONTEXT(name) {
    const int n = d.state_size(), P = d.param_size();
    BOOST_REQUIRE(z.size() == n);
    BOOST_REQUIRE(theta.size() == P);
    Vector work(std::max(d.workspace_size(), 1));
    work.setConstant(NAN);  // the methods must not read scratch they did not write
    auto f_of_z = [&](const Vector& zz) {
      Vector f = Vector::Constant(n, NAN);
      d.rhs(t, zz, theta, f, work);
      return f;
    };
    auto f_of_theta = [&](const Vector& th) {
      Vector f = Vector::Constant(n, NAN);
      d.rhs(t, z, th, f, work);
      return f;
    };
    const Vector a = random_vector(n, 17, 1.0), v = random_vector(n, 23, 1.0);

    Matrix J = Matrix::Constant(n, n, NAN);  // outputs are overwritten, never accumulated into
    d.jacobian(t, z, theta, J, work);
    Vector Jv = Vector::Constant(n, NAN), a_z = Vector::Constant(n, NAN), a_th = Vector::Constant(P, NAN);
    Vector a_z_only = Vector::Constant(n, NAN), none;  // none: an empty a_dfdtheta asks for the state part only
    d.jvp(t, z, theta, v, Jv, work);
    d.vjp(t, z, theta, a, a_z, a_th, work);
    d.vjp(t, z, theta, a, a_z_only, none, work);

    Measured m;
    const Matrix J_fd = fd_jacobian(f_of_z, z, fd_rel, fd_floor);
    m.jac_fd = rel(J, J_fd);
    m.vjp_z = rel(a_z, J.transpose() * a);
    m.jvp = rel(Jv, J * v);
    BOOST_TEST(J.allFinite());
    BOOST_TEST(m.jac_fd < bound, "Jacobian vs FD " << m.jac_fd);
    BOOST_TEST(m.vjp_z < 1e-13, "VJP_z vs J^T a " << m.vjp_z);
    BOOST_TEST(m.jvp < 1e-13, "JVP vs J v " << m.jvp);
    BOOST_TEST(rel(a_z_only, a_z) < 1e-15, "state-only VJP");
    if (P > 0) {
      const Matrix Jp_fd = fd_jacobian(f_of_theta, theta, fd_rel, fd_floor);
      m.vjp_theta_fd = rel(a_th, Jp_fd.transpose() * a);
      BOOST_TEST(m.vjp_theta_fd < bound, "VJP_theta vs FD " << m.vjp_theta_fd);
    }
    // Heap allocations: warm up once, then count one call of every method.
    Vector f(n);
    d.rhs(t, z, theta, f, work);
    const long before = g_allocs.load();
    d.rhs(t, z, theta, f, work);
    d.jacobian(t, z, theta, J, work);
    d.jvp(t, z, theta, v, Jv, work);
    d.vjp(t, z, theta, a, a_z, a_th, work);
    d.vjp(t, z, theta, a, a_z_only, none, work);
    m.allocs = CVNODE_COUNT_MALLOC ? g_allocs.load() - before : 0;
    std::printf("%-34s jac_fd %.2e  vjp_theta_fd %.2e  vjp_z %.1e  jvp %.1e  allocs %ld\n", name, m.jac_fd,
                m.vjp_theta_fd, m.vjp_z, m.jvp, m.allocs);
    return m;
  }
  return {};
}

// Robertson written once as a template, for the AutoDiff adapter (parameter order of cvsRoberts).
struct RobertsonT {
  template <class T, int N, int P>
  void operator()(T, const Eigen::Matrix<T, N, 1>& y, const Eigen::Matrix<T, P, 1>& p,
                  Eigen::Matrix<T, N, 1>& f) const {
    const T r1 = p[0] * y[0];
    const T r2 = p[1] * y[1] * y[2];
    const T r3 = p[2] * y[1] * y[1];
    f[0] = -r1 + r2;
    f[1] = r1 - r2 - r3;
    f[2] = r3;
  }
};

// A time-dependent, nonlinear test physics with transcendental functions (exp, sin, sqrt), so
// the AutoDiff route is exercised beyond polynomials.
struct Forced {
  template <class T>
  void operator()(T t, const Eigen::Matrix<T, 2, 1>& z, const Eigen::Matrix<T, 3, 1>& p,
                  Eigen::Matrix<T, 2, 1>& f) const {
    using std::exp, std::sin, std::sqrt;
    f[0] = -p[0] * z[0] + p[1] * sin(t) * z[1] * z[1];
    f[1] = -exp(p[2] * z[0]) * z[1] + sqrt(1.0 + z[0] * z[0]);
  }
};

const Vector kYRob = (Vector(3) << 0.83, 2.7e-5, 0.17).finished();

std::shared_ptr<Mlp> small_mlp(int n, int hidden, bool time_input) {
  MlpSpec s;
  s.layers = {n, hidden, n};
  s.time_input = time_input;
  return std::make_shared<Mlp>(s);
}

}  // namespace

BOOST_AUTO_TEST_CASE(allocation_counter_works) {
  // Guards the zero-allocation claims below: a counter that never counts would pass them all.
  if (!CVNODE_COUNT_MALLOC) return;
  const long before = g_allocs.load();
  auto* v = new Vector(100);
  delete v;
  BOOST_TEST(g_allocs.load() - before >= 2);
}

BOOST_AUTO_TEST_CASE(linear_decay) {
  const Vector k = (Vector(4) << 1.0, 10.0, 100.0, 1e4).finished();
  const Vector z = random_vector(4, 3);
  const LinearDecay learn(4), fixed(k);
  BOOST_TEST(learn.param_size() == 4);
  BOOST_TEST(fixed.param_size() == 0);
  BOOST_TEST(check_dynamics("linear_decay learnable", learn, 0.3, z, k).allocs == 0);
  BOOST_TEST(check_dynamics("linear_decay fixed", fixed, 0.3, z, Vector()).allocs == 0);
  Vector f(4), w(1);
  fixed.rhs(0, z, Vector(), f, w);
  BOOST_TEST(rel(f, -(k.array() * z.array()).matrix()) == 0.0);
}

BOOST_AUTO_TEST_CASE(mass_action_network) {
  const MassActionSpec spec = MassActionSpec::parse(
      {"A", "B", "C", "D"}, {"A -> B", "A + B -> C", "2 C -> D", "-> A", "D ->", "2*A + C -> 3 B", "0 -> B + D"});
  BOOST_TEST(spec.reaction_count() == 7);
  BOOST_TEST(spec.reaction_string(5) == "2 A + C -> 3 B");
  BOOST_TEST(spec.reaction_string(3) == "0 -> A");
  BOOST_TEST(spec.reactants(1, 0) == 1);
  BOOST_TEST(spec.products(5, 1) == 3);
  const MassAction ma(spec);
  const Vector k = (Vector(7) << 0.5, 2.0, 0.7, 0.1, 1.3, 4.0, 0.2).finished();
  const Vector z = (Vector(4) << 0.9, 0.4, 1.3, 0.2).finished();
  BOOST_TEST(check_dynamics("mass_action 4 species 7 reactions", ma, 0, z, k).allocs == 0);
  // Zero concentrations: derivatives of z^2 at 0 need no division.
  const Vector z0 = (Vector(4) << 0.0, 0.4, 0.0, 0.2).finished();
  check_dynamics("mass_action at zero species", ma, 0, z0, k, 1e-3, 1e-3);
  // The rhs itself, written out for reaction 6 alone: 2A + C -> 3B at rate k A^2 C.
  Vector only6 = Vector::Zero(7);
  only6[5] = 4.0;
  Vector f(4), w(ma.workspace_size());
  ma.rhs(0, z, only6, f, w);
  const double v6 = 4.0 * z[0] * z[0] * z[2];
  BOOST_TEST(rel(f, (Vector(4) << -2 * v6, 3 * v6, -v6, 0).finished()) < 1e-15);

  BOOST_CHECK_THROW(MassActionSpec::parse({"A"}, {"A -> X"}), OptionsError);
  BOOST_CHECK_THROW(MassActionSpec::parse({"A"}, {"A = A"}), OptionsError);
  BOOST_CHECK_THROW(MassActionSpec::parse({"A"}, {"A -> A -> A"}), OptionsError);
}

BOOST_AUTO_TEST_CASE(robertson_three_routes_agree) {
  const Robertson hand;
  const MassAction ma(robertson_mass_action());
  const AutoDiffDynamics<RobertsonT, 3, 3> ad;
  const Vector p = Robertson::default_parameters();
  BOOST_TEST(ma.spec().reaction_string(1) == "y2 + y3 -> y1 + y3");
  BOOST_TEST(check_dynamics("robertson hand-written", hand, 0, kYRob, p).allocs == 0);
  BOOST_TEST(check_dynamics("robertson mass action", ma, 0, kYRob, p).allocs == 0);
  BOOST_TEST(check_dynamics("robertson autodiff fixed 3+3", ad, 0, kYRob, p).allocs == 0);

  // The three implementations are the same function with the same derivatives (to rounding)
  // at several states, including one with y2 = 0.
  for (const Vector& y : {kYRob, Vector((Vector(3) << 1.0, 0.0, 0.0).finished()),
                          Vector((Vector(3) << 0.1, 1e-6, 0.9).finished())}) {
    const Vector a = random_vector(3, 5), v = random_vector(3, 6);
    Vector w(std::max(ma.workspace_size(), 1));
    Vector f[3], Jv[3], az[3], ap[3];
    Matrix J[3];
    const Dynamics* ds[3] = {&hand, &ma, &ad};
    for (int i = 0; i < 3; ++i) {
      f[i].resize(3), Jv[i].resize(3), az[i].resize(3), ap[i].resize(3), J[i].resize(3, 3);
      ds[i]->rhs(0, y, p, f[i], w);
      ds[i]->jacobian(0, y, p, J[i], w);
      ds[i]->jvp(0, y, p, v, Jv[i], w);
      ds[i]->vjp(0, y, p, a, az[i], ap[i], w);
    }
    for (int i = 1; i < 3; ++i) {
      BOOST_TEST((f[i] - f[0]).norm() <= 1e-15 * (p.norm() * y.norm() + 1e-300) + 1e-18);
      BOOST_TEST(rel(J[i], J[0]) < 1e-15);
      BOOST_TEST(rel(Jv[i], Jv[0]) < 1e-15);
      BOOST_TEST(rel(az[i], az[0]) < 1e-15);
      BOOST_TEST((ap[i] - ap[0]).norm() <= 1e-15 * (ap[0].norm() + 1e-300));
    }
  }
  // The classic right-hand side at the initial state: only y1 -> y2 runs.
  Vector f(3), w(1);
  hand.rhs(0, (Vector(3) << 1, 0, 0).finished(), p, f, w);
  BOOST_TEST(rel(f, (Vector(3) << -0.04, 0.04, 0).finished()) < 1e-16);
}

BOOST_AUTO_TEST_CASE(autodiff_nonpolynomial_and_dynamic_sizes) {
  const AutoDiffDynamics<Forced, 2, 3> fixed;
  const Vector z = (Vector(2) << 0.7, -1.2).finished(), p = (Vector(3) << 1.5, 0.3, -0.4).finished();
  BOOST_TEST(check_dynamics("autodiff fixed (exp, sin, sqrt)", fixed, 1.1, z, p).allocs == 0);
  // Analytic df/dt-free check of one entry: df1/dz0 = -p2 exp(p2 z0) z1 + z0 / sqrt(1 + z0^2).
  Matrix J(2, 2);
  Vector w(1);
  fixed.jacobian(1.1, z, p, J, w);
  BOOST_TEST(std::abs(J(1, 0) - (-p[2] * std::exp(p[2] * z[0]) * z[1] + z[0] / std::sqrt(1 + z[0] * z[0]))) < 1e-15);

  // Runtime sizes: same numbers, but the derivative vectors live on the heap.
  const AutoDiffDynamics<RobertsonT, Eigen::Dynamic, Eigen::Dynamic> dyn(RobertsonT{}, 3, 3);
  const Measured m = check_dynamics("robertson autodiff dynamic", dyn, 0, kYRob, Robertson::default_parameters());
  if (CVNODE_COUNT_MALLOC) BOOST_TEST(m.allocs > 0);  // documented in autodiff_dynamics.h: the dynamic variant allocates
}

BOOST_AUTO_TEST_CASE(parameter_transforms) {
  const ParamBound bs[] = {ParamBound::identity(), ParamBound::log(), ParamBound::bounded(-2.0, 5.0),
                           ParamBound::log_bounded(1e-3, 1e8)};
  for (const ParamBound& b : bs) {
    for (double q : {-3.0, -0.2, 0.0, 0.9, 4.0}) {
      const double p = b.to_physical(q);
      BOOST_TEST(std::abs(b.to_internal(p) - q) < 1e-9 * (1 + std::abs(q)));
      const double h = 1e-4;
      const double fd = (-b.to_physical(q + 2 * h) + 8 * b.to_physical(q + h) - 8 * b.to_physical(q - h) +
                         b.to_physical(q - 2 * h)) / (12 * h);
      BOOST_TEST(std::abs(b.derivative(q) - fd) <= 1e-9 * std::abs(fd) + 1e-12);
      if (b.kind == ParamTransform::Bounded) BOOST_TEST((p > -2.0 && p < 5.0));
      if (b.kind == ParamTransform::LogBounded) BOOST_TEST((p > 1e-3 && p < 1e8));
    }
  }
  BOOST_CHECK_THROW(ParamBound::log().to_internal(-1.0), OptionsError);
  BOOST_CHECK_THROW(ParamBound::bounded(0, 1).to_internal(1.0), OptionsError);
  BOOST_CHECK_THROW(TransformedParameters(std::make_shared<Robertson>(), ParamBound::bounded(1, 1)), OptionsError);

  // Robertson with log rates: the Dynamics sees exp(q).
  auto rob = std::make_shared<Robertson>();
  const TransformedParameters logrob(rob, ParamBound::log());
  const Vector q = logrob.to_internal(Robertson::default_parameters());
  const Vector p0 = Robertson::default_parameters();
  // Scalar std::log: Eigen's vectorised log trips a GCC 12 -Wuninitialized false positive (AVX-512).
  BOOST_TEST(rel(q, (Vector(3) << std::log(p0[0]), std::log(p0[1]), std::log(p0[2])).finished()) < 1e-15);
  BOOST_TEST(check_dynamics("robertson log rates", logrob, 0, kYRob, q, 1e-3, 1e-1).allocs == 0);
  // Mixed transforms on a mass-action network.
  auto ma = std::make_shared<MassAction>(robertson_mass_action());
  const TransformedParameters mixed(ma, {ParamBound::bounded(0.0, 1.0), ParamBound::log_bounded(1.0, 1e6),
                                         ParamBound::log()});
  const Vector qm = mixed.to_internal(Robertson::default_parameters());
  BOOST_TEST(rel(mixed.to_physical(qm), Robertson::default_parameters()) < 1e-12);
  BOOST_TEST(check_dynamics("mass action mixed transforms", mixed, 0, kYRob, qm, 1e-3, 1e-1).allocs == 0);
}

BOOST_AUTO_TEST_CASE(hybrid_couplings) {
  // Full coupling: linear decay with learnable rates + Mlp on the whole state (the B3 shape).
  {
    auto decay = std::make_shared<LinearDecay>(5);
    auto mlp = small_mlp(5, 8, false);
    const Hybrid h(decay, mlp);
    BOOST_TEST(h.param_size() == 5 + mlp->param_size());
    const Vector theta = (Vector(h.param_size()) << (Vector(5) << 1, 3, 10, 30, 100).finished(),
                          mlp->initial_parameters(Init::Glorot, 4)).finished();
    const Vector z = random_vector(5, 9);
    BOOST_TEST(check_dynamics("hybrid decay + mlp", h, 0.2, z, theta).allocs == 0);
    // Its rhs is the sum of the parts.
    Vector f(5), fd(5), fm(5), w(h.workspace_size()), wm(mlp->workspace_size());
    h.rhs(0.2, z, theta, f, w);
    decay->rhs(0.2, z, theta.head(5), fd, wm);
    mlp->rhs(0.2, z, theta.tail(mlp->param_size()), fm, wm);
    BOOST_TEST(rel(f, fd + fm) < 1e-15);
  }
  // Selected components, mask and input scale, time input, log-rate physics: Robertson with a
  // network reading (y1, y3) scaled, adding to (y2, y3) with small weights.
  {
    auto rob = std::make_shared<TransformedParameters>(std::make_shared<Robertson>(), ParamBound::log());
    auto mlp = small_mlp(2, 6, true);
    HybridCoupling c;
    c.input_indices = {0, 2};
    c.output_indices = {1, 2};
    c.output_mask = (Vector(2) << 0.05, 1e-3).finished();
    c.input_scale = (Vector(2) << 2.0, 0.5).finished();
    const Hybrid h(rob, mlp, c);
    const Vector theta = (Vector(h.param_size()) << rob->to_internal(Robertson::default_parameters()),
                          mlp->initial_parameters(Init::Glorot, 8)).finished();
    BOOST_TEST(check_dynamics("hybrid robertson(log) + mlp selected", h, 0.7, kYRob, theta, 1e-3, 1e-1).allocs == 0);
    // The network's term by hand.
    Vector f(3), fr(3), x(2), y(2), w(h.workspace_size());
    h.rhs(0.7, kYRob, theta, f, w);
    rob->rhs(0.7, kYRob, theta.head(3), fr, w);
    x << 2.0 * kYRob[0], 0.5 * kYRob[2];
    mlp->rhs(0.7, x, theta.tail(mlp->param_size()), y, w);
    fr[1] += 0.05 * y[0];
    fr[2] += 1e-3 * y[1];
    BOOST_TEST(rel(f, fr) < 1e-15);
  }
  // Network only (no physics), and a network whose outputs land on one component twice.
  {
    auto mlp = small_mlp(3, 5, false);
    const Hybrid only(nullptr, mlp);
    const Vector theta = mlp->initial_parameters(Init::Glorot, 12);
    BOOST_TEST(check_dynamics("hybrid network only", only, 0, random_vector(3, 2), theta).allocs == 0);
    HybridCoupling c;
    c.input_indices = {0, 1, 1};
    c.output_indices = {2, 2, 0};
    auto ad = std::make_shared<AutoDiffDynamics<Forced, 2, 3>>();
    auto mlp2 = small_mlp(3, 4, false);
    BOOST_CHECK_THROW(Hybrid(ad, mlp2, c), OptionsError);  // index 2 is outside a 2-state
    c.output_indices = {1, 1, 0};
    const Hybrid h(ad, mlp2, c);
    const Vector th = (Vector(h.param_size()) << 1.5, 0.3, -0.4, mlp2->initial_parameters(Init::Glorot, 13)).finished();
    BOOST_TEST(check_dynamics("hybrid autodiff + repeated outputs", h, 0.4, random_vector(2, 4), th).allocs == 0);
  }
  // Misfits are reported.
  BOOST_CHECK_THROW(Hybrid(nullptr, nullptr), OptionsError);
  BOOST_CHECK_THROW(Hybrid(std::make_shared<Robertson>(), small_mlp(2, 3, false)), OptionsError);
}

// The rate of one reaction as a term: r(y2) = k y2^2 for 2 y2 -> y2 + y3 (a network would
// stand here in a fit; this Dynamics of one state computes the exact rate).
struct SecondOrderRate {
  template <class T>
  void operator()(T, const Eigen::Matrix<T, 1, 1>& y, const Eigen::Matrix<T, 1, 1>& k, Eigen::Matrix<T, 1, 1>& r) const {
    r[0] = k[0] * y[0] * y[0];
  }
};

BOOST_AUTO_TEST_CASE(reaction_replaced_through_output_matrix) {
  // Robertson = reactions 1 and 2 as mass action + reaction 3's rate entering through its net
  // stoichiometry column S = (0, -1, 1): f += S r(y2).
  auto two = std::make_shared<MassAction>(MassActionSpec::parse({"y1", "y2", "y3"}, {"y1 -> y2", "y2 + y3 -> y1 + y3"}));
  auto rate = std::make_shared<AutoDiffDynamics<SecondOrderRate, 1, 1>>();
  HybridCoupling c;
  c.input_indices = {1};
  c.output_matrix = (Matrix(3, 1) << 0, -1, 1).finished();
  const Hybrid h(two, rate, c);
  BOOST_TEST(h.output_indices().empty());
  const Vector p = Robertson::default_parameters();  // [k1, k2 | k3]: the same layout as Robertson's
  BOOST_TEST(check_dynamics("hybrid output_matrix (reaction 3)", h, 0, kYRob, p, 1e-3, 1e-1).allocs == 0);
  const Robertson rob;
  const Vector a = random_vector(3, 8);
  Vector f(3), fr(3), az(3), azr(3), ap(3), apr(3), w(h.workspace_size()), w0(1);
  Matrix J(3, 3), Jr(3, 3);
  h.rhs(0, kYRob, p, f, w);
  rob.rhs(0, kYRob, p, fr, w0);
  h.jacobian(0, kYRob, p, J, w);
  rob.jacobian(0, kYRob, p, Jr, w0);
  h.vjp(0, kYRob, p, a, az, ap, w);
  rob.vjp(0, kYRob, p, a, azr, apr, w0);
  BOOST_TEST(rel(f, fr) < 1e-15);
  BOOST_TEST(rel(J, Jr) < 1e-15);
  BOOST_TEST(rel(az, azr) < 1e-15);
  BOOST_TEST(rel(ap, apr) < 1e-15);
  // With a learned network in its place: an Mlp of one input and one output, scaled input.
  MlpSpec s;
  s.layers = {1, 6, 1};
  auto mlp = std::make_shared<Mlp>(s);
  c.input_scale = Vector::Constant(1, 1e4);  // y2 ~ 1e-5 -> O(0.1) for the network
  const Hybrid hn(two, mlp, c);
  const Vector th = (Vector(hn.param_size()) << 0.04, 1e4, mlp->initial_parameters(Init::Glorot, 6)).finished();
  // FD floor 1e-5: the network sees 1e4 y2, so the y2 step must stay well below 1e-4.
  BOOST_TEST(check_dynamics("hybrid output_matrix + mlp", hn, 0, kYRob, th, 1e-3, 1e-5).allocs == 0);
  c.output_indices = {2};
  BOOST_CHECK_THROW(Hybrid(two, rate, c), OptionsError);  // output_matrix and output_indices
  c.output_indices.clear();
  c.output_matrix = Matrix::Ones(2, 1);
  BOOST_CHECK_THROW(Hybrid(two, rate, c), OptionsError);  // wrong shape
}

BOOST_AUTO_TEST_CASE(mlp_is_allocation_free_too) {
  // Not this suite's code, but Hybrid's promise rests on it.
  auto mlp = small_mlp(4, 16, true);
  BOOST_TEST(check_dynamics("mlp 4-16-4 (reference)", *mlp, 0.1, random_vector(4, 1),
                            mlp->initial_parameters(Init::Glorot, 2)).allocs == 0);
}
