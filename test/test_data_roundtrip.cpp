// Dataset round trips: every generator -> write -> read gives identical arrays and metadata;
// range reads equal subsets; splits, minibatches, normalisation and trajectories behave.
// ctest: labels=unit,sanitize timeout=120
#define BOOST_TEST_MODULE data_roundtrip
#include <boost/test/unit_test.hpp>

#include <unistd.h>

#include <cmath>
#include <cstdlib>
#include <set>

#include <nlohmann/json.hpp>

#include "cvnode/dataset.h"
#include "cvnode/errors.h"
#include "cvnode/generators.h"
#include "cvnode/physics.h"
#include "test_util.h"

using namespace cvnode;

namespace {

std::string temp_dir() {
  static const std::string dir = cvnode::test::make_temp_dir("data_roundtrip");
  return dir;
}

// Bitwise equality of doubles, NaN equal to NaN.
bool same(double a, double b) { return (std::isnan(a) && std::isnan(b)) || a == b; }

// The same id, t0, times and mask.
void check_same_rows(const Series& x, const Series& y) {
  BOOST_REQUIRE_EQUAL(x.id, y.id);
  BOOST_CHECK_EQUAL(x.t0, y.t0);
  BOOST_REQUIRE(x.times == y.times);
  BOOST_REQUIRE(x.mask == y.mask);
}

void check_equal(const Dataset& a, const Dataset& b) {
  BOOST_REQUIRE_EQUAL(a.size(), b.size());
  BOOST_CHECK(a.channel_names() == b.channel_names());
  BOOST_CHECK(a.channel_units() == b.channel_units());
  BOOST_CHECK(a.covariate_names() == b.covariate_names());
  BOOST_CHECK(a.control_names() == b.control_names());
  BOOST_CHECK_EQUAL(a.control_interpolation(), b.control_interpolation());
  BOOST_CHECK_EQUAL(a.provenance(), b.provenance());
  BOOST_CHECK_EQUAL(a.normalized(), b.normalized());
  BOOST_CHECK_EQUAL(a.normalization().mean.size(), b.normalization().mean.size());
  if (!a.normalization().empty() && !b.normalization().empty()) {
    BOOST_CHECK(a.normalization().mean == b.normalization().mean);
    BOOST_CHECK(a.normalization().std == b.normalization().std);
  }
  for (std::size_t i = 0; i < a.size(); ++i) {
    const Series x = a.series(i), y = b.series(i);
    check_same_rows(x, y);
    BOOST_REQUIRE_EQUAL(x.values.rows(), y.values.rows());
    for (Eigen::Index e = 0; e < x.values.size(); ++e) BOOST_REQUIRE(same(x.values(e), y.values(e)));
    BOOST_CHECK(x.initial_state == y.initial_state);
    BOOST_CHECK(x.covariates == y.covariates);
    BOOST_CHECK(x.control_times == y.control_times);
    BOOST_CHECK(x.control_values == y.control_values);
  }
}

// JSON values equal, numbers to a relative 1e-8.
bool close_json(const nlohmann::json& a, const nlohmann::json& b) {
  if (a.is_number() && b.is_number()) {
    const double x = a.get<double>(), y = b.get<double>();
    return std::abs(x - y) <= 1e-8 * std::max(std::abs(x), std::abs(y));
  }
  if (a.type() != b.type() || a.size() != b.size()) return false;
  if (a.is_object()) {
    for (auto it = a.begin(); it != a.end(); ++it)
      if (!b.contains(it.key()) || !close_json(it.value(), b.at(it.key()))) return false;
    return true;
  }
  if (a.is_array()) {
    for (std::size_t i = 0; i < a.size(); ++i)
      if (!close_json(a[i], b[i])) return false;
    return true;
  }
  return a == b;
}

// A shipped dataset against its regeneration by this build. The build's instruction set decides
// how Eigen sums and fuses (the shipped files come from a -march=native build with AVX-512 and
// FMA; the default build has neither): the values and the noise statistics in the provenance
// agree to 1e-8 of each channel's largest value (measured: 1.7e-9 at most, the spiral; the
// generators solve at rtol 1e-10),
// everything else - ids, times, masks, metadata - exactly.
void check_regenerated(const Dataset& a, const Dataset& b) {
  BOOST_REQUIRE_EQUAL(a.size(), b.size());
  BOOST_CHECK(a.channel_names() == b.channel_names());
  BOOST_CHECK(close_json(nlohmann::json::parse(a.provenance()), nlohmann::json::parse(b.provenance())));
  // Differences relative to each channel's largest magnitude (values cross zero).
  const int C = a.channels();
  Vector scale = Vector::Zero(C);
  for (std::size_t i = 0; i < a.size(); ++i) {
    const Series x = a.series(i);
    for (Eigen::Index k = 0; k < x.values.rows(); ++k)
      for (int c = 0; c < C; ++c)
        if (x.mask(k, c) != 0) scale[c] = std::max(scale[c], std::abs(x.values(k, c)));
  }
  double worst = 0;
  for (std::size_t i = 0; i < a.size(); ++i) {
    const Series x = a.series(i), y = b.series(i);
    check_same_rows(x, y);
    BOOST_REQUIRE_EQUAL(x.initial_state.size(), y.initial_state.size());
    for (Eigen::Index j = 0; j < x.initial_state.size(); ++j)
      worst = std::max(worst, std::abs(x.initial_state[j] - y.initial_state[j]) / scale[j % C]);
    for (Eigen::Index k = 0; k < x.values.rows(); ++k)
      for (int c = 0; c < C; ++c)
        if (x.mask(k, c) != 0) worst = std::max(worst, std::abs(x.values(k, c) - y.values(k, c)) / scale[c]);
  }
  BOOST_TEST_MESSAGE("largest difference of a value, relative to its channel's largest: " << worst);
  BOOST_TEST(worst <= 1e-8);
}

// Classical RK4 with a small fixed step: an independent check of the generators' solutions.
Vector rk4(const Dynamics& f, const Vector& theta, Vector z, double t0, double t1, int steps) {
  Vector k1(z.size()), k2(z.size()), k3(z.size()), k4(z.size()), w(0);
  const double h = (t1 - t0) / steps;
  for (int s = 0; s < steps; ++s) {
    const double t = t0 + s * h;
    f.rhs(t, z, theta, k1, w);
    f.rhs(t + h / 2, z + h / 2 * k1, theta, k2, w);
    f.rhs(t + h / 2, z + h / 2 * k2, theta, k3, w);
    f.rhs(t + h, z + h * k3, theta, k4, w);
    z += h / 6 * (k1 + 2 * k2 + 2 * k3 + k4);
  }
  return z;
}

}  // namespace

BOOST_AUTO_TEST_CASE(every_generator_round_trips_exactly) {
  for (const auto& system : generator_systems()) {
    BOOST_TEST_CONTEXT(system) {
      GeneratorOptions o;
      o.system = system;
      o.series = 12;
      o.observations = 15;
      o.noise = 0.02;
      o.missing = 0.1;
      o.seed = 42;
      const Dataset d = generate(o);
      BOOST_CHECK_EQUAL(d.size(), 12u);
      BOOST_CHECK_EQUAL(d.observations(), 12u * 15u);
      const std::string path = temp_dir() + "/" + system + ".h5";
      d.write(path);
      const Dataset r = Dataset::read(path);
      check_equal(d, r);
      BOOST_CHECK_EQUAL(Dataset::count_series(path), 12u);
      // Same seed, same arrays; another seed, other arrays.
      check_equal(d, generate(o));
      o.seed = 43;
      BOOST_CHECK(generate(o).series(3).values != d.series(3).values);
      // About 10% missing.
      const Vector miss = d.missing_fraction();
      for (Eigen::Index c = 0; c < miss.size(); ++c) BOOST_CHECK(miss[c] > 0.02 && miss[c] < 0.25);
    }
  }
}

BOOST_AUTO_TEST_CASE(noise_free_generators_follow_the_true_dynamics) {
  struct Case { const char* system; std::unique_ptr<Dynamics> f; Vector theta; double tol; int steps; };
  std::vector<Case> cases;
  cases.push_back({"spiral", std::make_unique<CubicSpiral>(), CubicSpiral::default_parameters(), 1e-6, 20000});
  cases.push_back({"lotka_volterra", std::make_unique<LotkaVolterra>(), LotkaVolterra::default_parameters(), 1e-6, 20000});
  cases.push_back({"damped_oscillator", std::make_unique<DampedOscillator>(), DampedOscillator::default_parameters(), 1e-8, 4000});
  for (auto& c : cases) {
    BOOST_TEST_CONTEXT(c.system) {
      GeneratorOptions o;
      o.system = c.system;
      o.series = 3;
      o.observations = 5;
      o.noise = 0;
      o.seed = 7;
      const Dataset d = generate(o);
      for (std::size_t i = 0; i < d.size(); ++i) {
        const Series s = d.series(i);
        const double t = s.times[s.times.size() - 1];
        const Vector ref = rk4(*c.f, c.theta, s.initial_state, 0.0, t, c.steps);
        const Vector got = s.values.row(s.times.size() - 1).transpose();
        BOOST_CHECK_SMALL((got - ref).norm() / ref.norm(), c.tol);
      }
    }
  }
  // The spiral's first series is torchdiffeq's ode_demo start.
  GeneratorOptions o;
  o.system = "spiral";
  o.series = 2;
  BOOST_CHECK(generate(o).series(0).initial_state == (Vector(2) << 2.0, 0.0).finished());
  // Robertson conserves y1 + y2 + y3.
  o.system = "robertson";
  o.noise = 0;
  const Dataset r = generate(o);
  for (std::size_t i = 0; i < r.size(); ++i) {
    const Series s = r.series(i);
    const double total = s.initial_state.sum();
    for (Eigen::Index k = 0; k < s.times.size(); ++k) BOOST_CHECK_SMALL(s.values.row(k).sum() - total, 1e-8);
    BOOST_CHECK(s.values(s.times.size() - 1, 0) < s.initial_state[0]);  // y1 is consumed
  }
}

BOOST_AUTO_TEST_CASE(covariates_controls_normalization_round_trip) {
  Dataset d({"a", "b"}, {"mg/L", "K"});
  d.set_covariate_names({"age", "weight"});
  d.set_control_names({"dose"});
  d.set_provenance("{\"lab\": \"test\"}");
  for (int i = 0; i < 5; ++i) {
    Series s;
    s.id = "patient-" + std::to_string(i);
    s.t0 = -1.0;
    s.times = Vector::LinSpaced(3 + i, 0.0, 1.0 + i);
    s.values = Matrix::Random(3 + i, 2);
    s.mask = Matrix::Ones(3 + i, 2);
    s.mask(1, 0) = 0;
    s.initial_state = (Vector(3) << i, 2.0 * i, 0.5).finished();
    s.covariates = (Vector(2) << 30.0 + i, 70.5).finished();
    s.control_times = (Vector(2) << -1.0, 0.5).finished();
    s.control_values = (Matrix(2, 1) << 1.0, 0.25 * i).finished();
    d.add(s);
  }
  const Normalization n = d.compute_normalization({0, 1, 2});
  d.normalize(n);
  const std::string path = temp_dir() + "/full.h5";
  d.write(path);
  Dataset r = Dataset::read(path);
  check_equal(d, r);
  BOOST_CHECK(r.normalized());
  BOOST_CHECK_EQUAL(r.series(2).mask(1, 0), 0.0);
  BOOST_CHECK(std::isnan(r.series(2).values(1, 0)));
  BOOST_CHECK_EQUAL(r.initial_state_size(), 3);
  BOOST_CHECK_EQUAL(r.covariate_names()[1], "weight");
  BOOST_CHECK_EQUAL(r.series(4).control_values(1, 0), 1.0);
  // Denormalising restores the raw numbers to rounding.
  r.denormalize();
  d.denormalize();
  for (std::size_t i = 0; i < d.size(); ++i) {
    const Series a = r.series(i), b = d.series(i);
    for (Eigen::Index e = 0; e < a.values.size(); ++e)
      if (a.mask(e)) BOOST_CHECK_CLOSE(a.values(e), b.values(e), 1e-12);
  }
}

BOOST_AUTO_TEST_CASE(range_reads_equal_subsets) {
  GeneratorOptions o;
  o.system = "damped_oscillator";
  o.series = 40;
  o.observations = 7;
  o.missing = 0.2;
  const Dataset d = generate(o);
  const std::string path = temp_dir() + "/range.h5";
  d.write(path);
  for (auto [first, count] : std::vector<std::pair<std::size_t, std::size_t>>{{0, 40}, {0, 1}, {13, 9}, {39, 1}, {40, 0}}) {
    std::vector<std::size_t> idx;
    for (std::size_t i = first; i < first + count; ++i) idx.push_back(i);
    check_equal(d.subset(idx), Dataset::read_range(path, first, count));
  }
  BOOST_CHECK_EXCEPTION(Dataset::read_range(path, 35, 6), DataError, [](const DataError& e) {
    return std::string(e.what()).find("series 35 to 41 requested, the file has 40") != std::string::npos;
  });
}

BOOST_AUTO_TEST_CASE(splits_minibatches_normalization_trajectories) {
  GeneratorOptions o;
  o.series = 50;
  o.observations = 10;
  o.missing = 0.1;
  Dataset d = generate(o);
  const Split a = d.split(0.6, 0.2, 5), b = d.split(0.6, 0.2, 5), c = d.split(0.6, 0.2, 6);
  BOOST_CHECK(a.train == b.train && a.validation == b.validation && a.test == b.test);
  BOOST_CHECK(a.train != c.train);
  BOOST_CHECK_EQUAL(a.train.size(), 30u);
  BOOST_CHECK_EQUAL(a.validation.size(), 10u);
  BOOST_CHECK_EQUAL(a.test.size(), 10u);
  std::set<std::size_t> all(a.train.begin(), a.train.end());
  all.insert(a.validation.begin(), a.validation.end());
  all.insert(a.test.begin(), a.test.end());
  BOOST_CHECK_EQUAL(all.size(), 50u);

  const auto e0 = Dataset::minibatches(a.train, 8, 1, 0), e0b = Dataset::minibatches(a.train, 8, 1, 0),
             e1 = Dataset::minibatches(a.train, 8, 1, 1);
  BOOST_CHECK(e0 == e0b);
  BOOST_CHECK(e0 != e1);
  BOOST_CHECK_EQUAL(e0.size(), 4u);
  BOOST_CHECK_EQUAL(e0.back().size(), 6u);
  std::set<std::size_t> seen;
  for (const auto& batch : e0) seen.insert(batch.begin(), batch.end());
  BOOST_CHECK(seen == std::set<std::size_t>(a.train.begin(), a.train.end()));

  // Training statistics: mean 0 and std 1 over the training series after normalising.
  const Normalization n = d.compute_normalization(a.train);
  d.normalize(n);
  const Normalization after = d.compute_normalization(a.train);
  for (int ch = 0; ch < 2; ++ch) {
    BOOST_CHECK_SMALL(after.mean[ch], 1e-12);
    BOOST_CHECK_CLOSE(after.std[ch], 1.0, 1e-10);
  }
  BOOST_CHECK_THROW(d.normalize(n), DataError);

  // Trajectories: masked entries are 0 with mask 0, z0 is the stored (normalised) state.
  const Trajectory tr = d.trajectory(3, 4);
  const Series s = d.series(3);
  BOOST_CHECK_EQUAL(tr.t0, 0.0);
  BOOST_CHECK_EQUAL(tr.z0.size(), 4);
  BOOST_CHECK_EQUAL(tr.z0[0], s.initial_state[0]);
  BOOST_CHECK_EQUAL(tr.z0[3], 0.0);
  BOOST_CHECK(tr.times == s.times);
  BOOST_CHECK(tr.mask == s.mask);
  BOOST_CHECK(tr.validate(4).empty());
  for (Eigen::Index e = 0; e < s.values.size(); ++e)
    BOOST_CHECK_EQUAL(tr.values(e), s.mask(e) ? s.values(e) : 0.0);
  BOOST_CHECK_THROW(d.trajectory(3, 1), DataError);
  BOOST_CHECK_EQUAL(d.trajectories(a.test, 2).size(), 10u);
}

// The shipped files of data/ are what their recorded provenance regenerates, array for array.
BOOST_AUTO_TEST_CASE(shipped_datasets_regenerate_from_their_provenance) {
  for (const char* name : {"lotka_volterra", "spiral", "damped_oscillator", "robertson"}) {
    BOOST_TEST_CONTEXT(name) {
      const Dataset shipped = Dataset::read(std::string(CVNODE_SOURCE_DIR) + "/data/" + name + ".h5");
      const auto p = nlohmann::json::parse(shipped.provenance());
      GeneratorOptions o;
      o.system = p.at("system").get<std::string>();
      o.series = p.at("series").get<int>();
      o.observations = p.at("observations").get<int>();
      o.grid = p.at("grid").get<int>();
      o.irregular = p.at("irregular").get<bool>();
      o.t_end = p.at("t_end").get<double>();
      o.noise = p.at("noise").get<double>();
      o.missing = p.at("missing").get<double>();
      o.seed = p.at("seed").get<std::uint64_t>();
      check_regenerated(shipped, generate(o));
    }
  }
  const Dataset lv = Dataset::read(std::string(CVNODE_SOURCE_DIR) + "/data/lotka_volterra.h5");
  BOOST_CHECK_EQUAL(lv.size(), 64u);
  BOOST_CHECK_EQUAL(lv.channels(), 2);
  BOOST_CHECK_EQUAL(lv.series_length(0), 30u);
}
