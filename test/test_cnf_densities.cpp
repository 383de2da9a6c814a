// The target densities of the flows: each log-density integrates to one, its sampler draws from
// it (the samples' mean log-density matches the entropy integrated on a grid), descriptions
// round-trip through JSON, and bad options are refused with a reason.
// ctest: labels=unit timeout=120
#define BOOST_TEST_MODULE cnf_densities
#include <boost/test/unit_test.hpp>

#include <cmath>
#include <filesystem>

#include "cvnode/densities.h"
#include "cvnode/errors.h"

using namespace cvnode;

namespace {

struct GridIntegrals {
  double mass = 0, entropy = 0;
  Eigen::Vector2d mean = Eigen::Vector2d::Zero();
};

// Midpoint rule on [-7, 7]^2 with step 0.04: for densities smooth on the scale of their noise
// (>= 0.1) the rule's error is ~exp(-2 pi^2 s^2 / h^2) ~ 1e-50 and the tails beyond 7 are far
// below 1e-10.
GridIntegrals integrate(const Density& d) {
  GridIntegrals g;
  const double h = 0.04;
  const int n = static_cast<int>(14 / h);
  for (int i = 0; i < n; ++i)
    for (int j = 0; j < n; ++j) {
      const Eigen::Vector2d x(-7 + (i + 0.5) * h, -7 + (j + 0.5) * h);
      const double lp = d.log_density(x);
      const double p = std::exp(lp);
      g.mass += p * h * h;
      if (p > 0) g.entropy -= p * lp * h * h;
      g.mean += p * x * h * h;
    }
  return g;
}

}  // namespace

BOOST_AUTO_TEST_CASE(toy_densities_integrate_to_one_and_samplers_draw_from_them) {
  for (const std::string kind : {"moons", "circles", "eight_gaussians", "checkerboard"}) {
    BOOST_TEST_CONTEXT(kind) {
      DensityOptions o;
      o.kind = kind;
      const auto d = make_density(o);
      BOOST_TEST(d->dim() == 2);
      const GridIntegrals g = integrate(*d);
      BOOST_TEST(g.mass == 1.0, boost::test_tools::tolerance(1e-8));
      // Monte Carlo against the grid: 4 standard errors (a sampler off by a fraction of its
      // noise shifts the mean log-density by many).
      const EntropyEstimate e = estimate_entropy(*d, 20000, 5);
      BOOST_TEST_MESSAGE(kind << ": entropy grid " << g.entropy << ", Monte Carlo " << e.value << " +- "
                              << e.standard_error);
      BOOST_TEST(std::abs(e.value - g.entropy) <= 4 * e.standard_error);
      const Matrix x = d->sample(20000, 6);
      const Eigen::Vector2d m = x.colwise().mean().transpose();
      const double sd = std::sqrt((x.rowwise() - m.transpose()).squaredNorm() / x.rows() / 20000);
      BOOST_TEST((m - g.mean).norm() <= 5 * sd);
      // Same seed, same samples.
      BOOST_TEST((d->sample(10, 3) - d->sample(10, 3)).norm() == 0.0);
    }
  }
}

BOOST_AUTO_TEST_CASE(circles_and_checkerboard_have_the_closed_form_values) {
  // Far from everything the circles' density is the ring's Gaussian profile: at rho = 3 the
  // inner ring is 1.5 / 0.24 = 6 std away (e^-18), so p ~ (1/2) e^0 I0e(k) / (2 pi s^2).
  DensityOptions o;
  o.kind = "circles";
  const auto c = make_density(o);
  const double s2 = 0.24 * 0.24, k = 3 * 3 / s2;
  const double ring = std::log(0.5 * std::cyl_bessel_i(0.0, k) * std::exp(-k) / (2 * M_PI * s2));
  BOOST_TEST(c->log_density(Eigen::Vector2d(3, 0)) == ring, boost::test_tools::tolerance(1e-7));
  // The checkerboard's middle of a filled cell: 1/32 times the cell's mass, which is ~1 - 4 x the
  // tail beyond 1 / 0.1 = 10 std.
  o.kind = "checkerboard";
  const auto b = make_density(o);
  BOOST_TEST(b->log_density(Eigen::Vector2d(1, 1)) == std::log(1.0 / 32), boost::test_tools::tolerance(1e-12));
  BOOST_TEST(b->log_density(Eigen::Vector2d(-1, 1)) < std::log(1.0 / 32) - 30);  // an empty cell
}

BOOST_AUTO_TEST_CASE(mixture_moments_json_and_normalisation) {
  DensityOptions o;
  o.kind = "mixture";
  o.dim = 2;
  o.components = 3;
  o.seed = 4;
  const auto d = make_density(o);
  BOOST_TEST(integrate(*d).mass == 1.0, boost::test_tools::tolerance(1e-8));
  o.dim = 6;
  const auto m = make_density(o);
  const auto back = density_from_json(m->to_json(), "test");
  BOOST_TEST(back->dim() == 6);
  const Matrix x = m->sample(5, 1);
  for (int i = 0; i < 5; ++i)
    BOOST_TEST(back->log_density(x.row(i).transpose()) == m->log_density(x.row(i).transpose()),
               boost::test_tools::tolerance(1e-14));
  for (const std::string kind : {"moons", "circles", "eight_gaussians", "checkerboard"}) {
    DensityOptions t;
    t.kind = kind;
    const auto a = make_density(t);
    const auto r = density_from_json(a->to_json(), "test");
    const Eigen::Vector2d p(0.3, -0.7);
    BOOST_TEST(r->log_density(p) == a->log_density(p), boost::test_tools::tolerance(1e-14));
  }
  // Different seeds, different mixtures; the same seed, the same one.
  o.seed = 5;
  BOOST_TEST(make_density(o)->to_json() != m->to_json());
  o.seed = 4;
  BOOST_TEST(make_density(o)->to_json() == m->to_json());
}

BOOST_AUTO_TEST_CASE(bad_options_and_descriptions_are_refused_with_a_reason) {
  auto message = [](auto&& f) {
    try {
      f();
    } catch (const std::exception& e) {
      return std::string(e.what());
    }
    return std::string();
  };
  DensityOptions o;
  o.kind = "spirals";
  BOOST_TEST(message([&] { make_density(o); }).find("'spirals'") != std::string::npos);
  o.kind = "moons";
  o.noise = 0;
  BOOST_TEST(message([&] { make_density(o); }).find("noise = 0") != std::string::npos);
  o.kind = "mixture";
  o.components = 0;
  BOOST_TEST(message([&] { make_density(o); }).find("components = 0") != std::string::npos);
  BOOST_CHECK_THROW(density_from_json("{", "f.h5"), DataError);
  BOOST_TEST(message([] { density_from_json(R"({"kind":"mixture","weights":[1],"means":[[0,0]],"chol":[[[1],[0,-1]]]})",
                                            "f.h5"); })
                 .find("f.h5: mixture component 0: Cholesky diagonal") != std::string::npos);
}

BOOST_AUTO_TEST_CASE(density_datasets_round_trip_with_their_density_and_entropy) {
  DensityOptions o;
  o.kind = "mixture";
  o.dim = 3;
  o.components = 2;
  o.seed = 8;
  const auto d = make_density(o);
  const Dataset data = density_dataset(*d, 50, 3, 5000);
  BOOST_TEST(data.size() == 50u);
  BOOST_TEST(data.channels() == 3);
  const std::string path = (std::filesystem::temp_directory_path() / "cvnode_test_density.h5").string();
  data.write(path);
  const Dataset back = Dataset::read(path);
  std::filesystem::remove(path);
  const Matrix X = d->sample(50, 3);
  for (std::size_t i = 0; i < back.size(); ++i) {
    const Series s = back.series(i);
    BOOST_TEST(s.times.size() == 1);
    BOOST_TEST((s.values.row(0) - X.row(i)).norm() == 0.0);
  }
  const auto rebuilt = dataset_density(back, path);
  BOOST_REQUIRE(rebuilt);
  BOOST_TEST(rebuilt->to_json() == d->to_json());
  const EntropyEstimate h = dataset_entropy(back), ref = estimate_entropy(*d, 5000, 4);
  BOOST_TEST(h.value == ref.value);
  BOOST_TEST(h.samples == 5000);
  // A dataset from elsewhere has no density.
  Dataset plain({"y"}, {""});
  Series s;
  s.id = "a";
  s.times = Vector::Zero(1);
  s.values = Matrix::Ones(1, 1);
  plain.add(s);
  BOOST_TEST(!dataset_density(plain, "plain.h5"));
  BOOST_TEST(std::isnan(dataset_entropy(plain).value));
}
