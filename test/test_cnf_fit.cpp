// A flow's fit from its configuration (cvnode/cnf_fit.h): the configuration reads the example
// file, prints back exactly and refuses what a flow cannot use by name; a short fit lowers the
// held-out NLL, resumes bit for bit from latest.h5, and the trained flow loaded from best.h5
// gives the log-densities the fit validated with, in the data's units (samples included).
// ctest: labels=integration timeout=300
#define BOOST_TEST_MODULE cnf_fit
#include <boost/test/unit_test.hpp>

#include <cmath>
#include <filesystem>
#include <fstream>

#include "models/cnf/cnf_fit.h"
#include "cvnode/errors.h"

using namespace cvnode;
namespace fs = std::filesystem;

namespace {

std::string refusal(const std::string& toml, const std::vector<std::string>& overrides = {}) {
  try {
    CnfFitConfig::parse(toml, "test.toml", overrides);
  } catch (const ConfigError& e) {
    return e.what();
  }
  return "accepted";
}

const std::string kMinimal = "[data]\nfile = \"points.h5\"\n[cnf]\n";

// 300 moons points (entropy from 2000 samples) in a fresh folder.
std::string moons_file(const std::string& name) {
  const fs::path dir = fs::temp_directory_path() / ("cvnode_test_cnf_fit_" + name);
  fs::remove_all(dir);
  fs::create_directories(dir);
  DensityOptions o;
  o.kind = "moons";
  const std::string path = (dir / "moons.h5").string();
  density_dataset(*make_density(o), 300, 3, 2000).write(path);
  return path;
}

CnfFitConfig small(const std::string& file) {
  return CnfFitConfig::parse("[data]\nfile = \"" + file +
                                 "\"\ntrain_fraction = 0.6\nval_fraction = 0.2\n"
                                 "[cnf]\nhidden = [8, 8]\ntrace = \"hutchinson\"\nprobes = 1\n"
                                 "[regularization]\nkinetic_weight = 0.01\nsteer = 0.2\n"
                                 "[solver]\nmethod = \"dopri5\"\nrtol = 1e-5\natol = 1e-5\n"
                                 "[optimizer]\nlr = 0.02\n[run]\nepochs = 4\nbatch_size = 60\nstack_size = 32\n",
                             "small.toml");
}

}  // namespace

BOOST_AUTO_TEST_CASE(the_example_configuration_reads_and_prints_back_exactly) {
  const CnfFitConfig c = CnfFitConfig::load(std::string(CVNODE_SOURCE_DIR) + "/data/cnf_moons.toml");
  BOOST_TEST(fs::path(c.base.data.file).is_absolute());  // relative to the configuration file
  BOOST_TEST(c.model.field == "mlp");
  BOOST_TEST(c.base.train.run.batch_size == 256);
  const std::string text = c.to_toml();
  const CnfFitConfig again = CnfFitConfig::parse(text, "printed");
  BOOST_TEST(again.to_toml() == text);
  BOOST_TEST(text.find("[model]") == std::string::npos);  // only what a flow uses is printed
  BOOST_TEST(text.find("window") == std::string::npos);
  // A flow's defaults where a series fit's do not suit points; overrides of both kinds.
  const CnfFitConfig d = CnfFitConfig::parse(kMinimal, "x.toml", {"cnf.trace=hutchinson", "run.epochs=3"});
  BOOST_TEST(d.base.train.run.stack_size == 128);
  BOOST_TEST(d.base.train.run.epochs == 3);
  BOOST_TEST((d.model.trace == TraceEstimator::Hutchinson));
  BOOST_TEST(CnfFitConfig::describes_cnf(std::string(CVNODE_SOURCE_DIR) + "/data/cnf_moons.toml"));
  BOOST_TEST(!CnfFitConfig::describes_cnf(std::string(CVNODE_SOURCE_DIR) + "/data/demo.toml"));
}

BOOST_AUTO_TEST_CASE(every_density_configuration_reads_and_is_a_flow) {
  // data/cnf_KIND.toml are what bench/cnf_densities.sh trains and docs/cnf.md quotes: each must
  // read (no unknown or misplaced key), describe a flow and print back to itself.
  int found = 0;
  for (const auto& entry : fs::directory_iterator(std::string(CVNODE_SOURCE_DIR) + "/data")) {
    const std::string name = entry.path().filename().string();
    if (name.rfind("cnf_", 0) != 0 || entry.path().extension() != ".toml") continue;
    BOOST_TEST_CONTEXT(name) {
      ++found;
      BOOST_TEST(CnfFitConfig::describes_cnf(entry.path().string()));
      const CnfFitConfig c = CnfFitConfig::load(entry.path().string());
      BOOST_TEST(c.base.data.file.find(name.substr(4, name.size() - 9) + ".h5") != std::string::npos);
      const std::string text = c.to_toml();
      BOOST_TEST(CnfFitConfig::parse(text, "printed").to_toml() == text);
    }
  }
  BOOST_TEST(found >= 3);  // moons, circles, checkerboard
}

BOOST_AUTO_TEST_CASE(what_a_flow_cannot_use_is_refused_by_name) {
  BOOST_TEST(refusal(kMinimal + "widht = 3\n").find("unknown key cnf.widht") != std::string::npos);
  BOOST_TEST(refusal(kMinimal + "trace = \"exactly\"\n").find("cnf.trace") != std::string::npos);
  BOOST_TEST(refusal(kMinimal + "hidden = 3\n").find("cnf.hidden") != std::string::npos);
  BOOST_TEST(refusal(kMinimal + "[model]\nhidden = [3]\n").find("[model] does not apply") != std::string::npos);
  BOOST_TEST(refusal(kMinimal + "[run]\nkinetic_weight = 1.0\n").find("run.kinetic_weight does not apply") !=
             std::string::npos);
  BOOST_TEST(refusal(kMinimal + "[regularization]\nsteer = 2.0\n").find("regularization.steer") != std::string::npos);
  BOOST_TEST(refusal(kMinimal, {"data.window=3"}).find("data.window does not apply") != std::string::npos);
  BOOST_TEST(refusal(kMinimal, {"solver.rtol=-1"}).find("rtol") != std::string::npos);
  BOOST_TEST(refusal(kMinimal + "[data]\n").find("test.toml") != std::string::npos);  // TOML error, file named
  BOOST_TEST(refusal("[data]\nfile = \"p.h5\"\n").find("no [cnf] section") != std::string::npos);
  BOOST_TEST(refusal("[data]\nfile = \"p.h5\"\nval_fraction = 0.0\n[cnf]\n").find("data.val_fraction") !=
             std::string::npos);
}

BOOST_AUTO_TEST_CASE(a_short_fit_learns_resumes_exactly_and_its_flow_reloads) {
  const std::string file = moons_file("fit");
  const fs::path dir = fs::path(file).parent_path();
  const CnfFitConfig c = small(file);
  CnfFitOptions o;
  o.quiet = true;
  o.out_dir = (dir / "full").string();
  const CnfFitResult full = run_cnf_fit(c, o);
  BOOST_TEST(full.epochs == 4);
  BOOST_TEST(full.history.size() == 4u);
  // 4 epochs of 3 steps take the NLL of the initial (near-identity, after normalisation:
  // ~2.84 + log_scale) flow down; the validation NLL after the last epoch is below the first's.
  BOOST_TEST(full.history.back().val_nll < full.history.front().val_nll);
  BOOST_TEST(full.history.front().nfe_forward > 0);
  BOOST_TEST(full.history.front().kinetic > 0);
  BOOST_TEST(std::isfinite(full.entropy.value));
  BOOST_TEST(full.test.log_density.size() == 60);  // 20% of 300 points

  // Interrupted after epoch 2, resumed from latest.h5: the same parameters, bit for bit.
  o.out_dir = (dir / "part").string();
  o.stop_after_epoch = 2;
  BOOST_TEST(run_cnf_fit(c, o).epochs == 2);
  o.stop_after_epoch = 0;
  o.resume = (dir / "part" / "latest.h5").string();
  const CnfFitResult resumed = run_cnf_fit(c, o);
  BOOST_TEST(resumed.epochs == 4);
  BOOST_TEST(resumed.history.size() == 4u);
  const Checkpoint a = Checkpoint::read((dir / "full" / "latest.h5").string());
  const Checkpoint b = Checkpoint::read((dir / "part" / "latest.h5").string());
  BOOST_TEST((a.parameters - b.parameters).norm() == 0.0);
  BOOST_TEST(resumed.best_val_nll == full.best_val_nll);

  // best.h5 reloaded: its validation NLL again from data-unit points, and samples whose
  // log-densities evaluated forward agree (the data's normalisation applied both ways).
  const TrainedCnf t = load_trained_cnf((dir / "full" / "best.h5").string());
  const CnfData d = load_cnf_data(t.config);
  const Vector logp = t.log_density(d.to_data(d.val));
  BOOST_TEST(-logp.mean() == full.best_val_nll, boost::test_tools::tolerance(1e-12));
  const FlowPoints s = t.sample(50, 7);
  BOOST_TEST((t.log_density(s.points) - s.log_density).cwiseAbs().maxCoeff() < 1e-4);
  BOOST_TEST(std::abs(s.points.col(0).mean()) < 4.0);  // data units: the moons span about [-3, 3]
}

BOOST_AUTO_TEST_CASE(a_dataset_of_series_is_refused_naming_the_series) {
  const fs::path dir = fs::temp_directory_path() / "cvnode_test_cnf_fit_series";
  fs::create_directories(dir);
  Dataset data({"x1", "x2"}, {"", ""});
  for (int i = 0; i < 5; ++i) {
    Series s;
    s.id = "s" + std::to_string(i);
    s.times = (Vector(2) << 0.0, 1.0).finished();
    s.values = Matrix::Ones(2, 2) * i;
    data.add(s);
  }
  const std::string path = (dir / "series.h5").string();
  data.write(path);
  try {
    load_cnf_data(CnfFitConfig::parse("[data]\nfile = \"" + path + "\"\n[cnf]\n", "t.toml"));
    BOOST_FAIL("accepted series of two observations");
  } catch (const DataError& e) {
    BOOST_TEST(std::string(e.what()).find("has 2 observations") != std::string::npos);
    BOOST_TEST(std::string(e.what()).find(path) != std::string::npos);
  }
}
