// The config keys of hybrid/stiff fits: [physics], loss.weight/scale, the solver's stiff options
// and plot.log_time parse, print back and fail with messages naming the key.
// ctest: labels=unit timeout=60
#define BOOST_TEST_MODULE stiff_config
#include <boost/test/unit_test.hpp>

#include "app/toml_tables.h"
#include "app/config.h"
#include "cvnode/model.h"

using namespace cvnode;

namespace {
std::string error_of(const std::string& toml, const std::vector<std::string>& ov = {}) {
  try {
    Config::parse("[data]\nfile = \"x.h5\"\nnormalize = false\n" + toml, "t.toml", ov);
  } catch (const ConfigError& e) {
    return e.what();
  }
  return "";
}
bool has(const std::string& s, const std::string& part) { return s.find(part) != std::string::npos; }
}  // namespace

BOOST_AUTO_TEST_CASE(new_keys_parse_and_round_trip) {
  const std::string toml = R"(
[data]
file = "x.h5"
normalize = false
[model]
hidden = [8]
[physics]
kind = "mass_action"
species = ["y1", "y2", "y3"]
reactions = ["y1 -> y2", "y2 + y3 -> y1 + y3"]
initial = [0.4, 1e3]
transform = "log"
network = true
inputs = [1]
input_scale = [3e4]
output_matrix = [[0.0], [-0.05], [0.05]]
[solver]
method = "bdf"
linear_solver = "band"
band_upper = 2
band_lower = 2
atol_vector = [1e-10, 1e-14, 1e-10]
adjoint_atol = 1e-9
max_order = 4
max_step = 100.0
min_step = 1e-14
initial_step = 1e-8
[loss]
weight = [1.0, 1e8, 1.0]
[plot]
log_time = true
)";
  const Config c = Config::parse(toml, "t.toml");
  BOOST_TEST(c.model.physics.kind == "mass_action");
  BOOST_TEST(c.model.physics.reactions.size() == 2u);
  BOOST_TEST(c.model.physics.output_matrix.size() == 3u);
  BOOST_TEST((c.train.solver.cvodes.linear_solver == LinearSolver::Band));
  BOOST_TEST(c.train.solver.cvodes.band_upper == 2);
  BOOST_TEST(c.train.solver.atol_vector.size() == 3);
  BOOST_TEST(c.train.solver.atol_vector[1] == 1e-14);
  BOOST_TEST(c.train.solver.cvodes.max_order == 4);
  BOOST_TEST(c.train.loss.weight[1] == 1e8);
  BOOST_TEST(c.plot.log_time);
  const Config back = Config::parse(c.to_toml(), "printed");
  BOOST_TEST(back.to_toml() == c.to_toml());
  // The model it gives: mass action (2 log rates) + a 1-8-1 network through the output matrix.
  const Model m(c.model, 3);
  BOOST_TEST_REQUIRE(m.hybrid() != nullptr);
  BOOST_TEST(m.hybrid()->physics_size() == 2);
  BOOST_TEST(m.network_params() == 2 + (1 * 8 + 8) + (8 * 1 + 1));
  BOOST_TEST(m.dynamics().state_size() == 3);
  const Vector p = m.hybrid()->physical(m.initial_parameters());
  BOOST_TEST(p[0] == 0.4, boost::test_tools::tolerance(1e-12));
  BOOST_TEST(p[1] == 1e3, boost::test_tools::tolerance(1e-12));
  // Preconditioner choice too.
  const Config g = Config::parse("[data]\nfile = \"x.h5\"\n[solver]\nmethod = \"bdf\"\nlinear_solver = \"gmres\"\n"
                                 "preconditioner = \"block_jacobi\"\n[loss]\nscale = \"max\"\n", "g.toml");
  BOOST_TEST((g.train.solver.cvodes.preconditioner == Preconditioner::BlockJacobi));
  BOOST_TEST(g.loss_scale == "max");
  // Adams with Newton iteration (docs/stiff.md compares it with BDF and fixed-point Adams).
  const Config n = Config::parse("[data]\nfile = \"x.h5\"\n[solver]\nnonlinear_solver = \"newton\"\n", "n.toml");
  BOOST_TEST((n.train.solver.cvodes.nonlinear_solver == NonlinearSolver::Newton));
  BOOST_TEST(Config::parse(n.to_toml(), "printed").to_toml() == n.to_toml());
  const Config r = Config::parse("[data]\nfile = \"x.h5\"\n[solver]\nadjoint_form = \"restart\"\n", "r.toml");
  BOOST_TEST((r.train.solver.cvodes.adjoint_form == AdjointForm::Restart));
  BOOST_TEST(Config::parse(r.to_toml(), "printed").to_toml() == r.to_toml());
}

BOOST_AUTO_TEST_CASE(errors_name_the_key) {
  std::string e = error_of("[physics]\nkinds = \"robertson\"\n");
  BOOST_TEST(has(e, "physics.kinds"), e);
  e = error_of("[physics]\nkind = \"arrhenius\"\n");
  BOOST_TEST(has(e, "physics.kind"), e);
  BOOST_TEST(has(e, "arrhenius"), e);
  e = error_of("[physics]\nkind = \"mass_action\"\nspecies = [\"a\"]\nreactions = [\"a + b -> a\"]\n");
  BOOST_TEST(has(e, "'b'"), e);
  e = error_of("[physics]\nkind = \"robertson\"\ntransform = \"sqrt\"\n");
  BOOST_TEST(has(e, "transform"), e);
  e = error_of("[physics]\ninitial = \"fast\"\n");
  BOOST_TEST(has(e, "physics.initial"), e);
  e = error_of("[physics]\noutput_matrix = [1.0, 2.0]\n");
  BOOST_TEST(has(e, "physics.output_matrix"), e);
  e = error_of("[solver]\nlinear_solver = \"lu\"\n");
  BOOST_TEST(has(e, "solver.linear_solver"), e);
  e = error_of("[solver]\nnonlinear_solver = \"picard\"\n");
  BOOST_TEST(has(e, "solver.nonlinear_solver"), e);
  e = error_of("[solver]\nmethod = \"bdf\"\nnonlinear_solver = \"fixed_point\"\n");
  BOOST_TEST(has(e, "fixed"), e);
  e = error_of("[solver]\nadjoint_form = \"jumps\"\n");
  BOOST_TEST(has(e, "solver.adjoint_form"), e);
  e = error_of("[solver]\nmethod = \"bdf\"\nadjoint_form = \"transition\"\n");
  BOOST_TEST(has(e, "transition"), e);
  e = error_of("[solver]\npreconditioner = \"ilu\"\n");
  BOOST_TEST(has(e, "solver.preconditioner"), e);
  e = error_of("[solver]\natol_vector = 1e-8\n");
  BOOST_TEST(has(e, "solver.atol_vector"), e);
  e = error_of("[solver]\nmax_order = 0.5\n");
  BOOST_TEST(has(e, "solver.max_order"), e);
  e = error_of("[loss]\nscale = \"range\"\n");
  BOOST_TEST(has(e, "loss.scale"), e);
  e = error_of("[loss]\nscale = \"std\"\nweight = [1.0]\n");
  BOOST_TEST(has(e, "loss.weight"), e);
  e = error_of("[plot]\nlog_time = 1\n");
  BOOST_TEST(has(e, "plot.log_time"), e);
  // Physics works in data units: normalisation must be off.
  try {
    Config::parse("[data]\nfile = \"x.h5\"\n[physics]\nkind = \"robertson\"\n", "n.toml");
    BOOST_FAIL("normalize = true with physics accepted");
  } catch (const ConfigError& ex) {
    BOOST_TEST(has(ex.what(), "data.normalize"), ex.what());
  }
  // --set reaches the new keys and names them on error.
  e = error_of("", {"physics.kind=robertsn"});
  BOOST_TEST(has(e, "physics.kind"), e);
}

// The configuration writer groups keys into one table per section wherever the key list splits a
// section (src/app/toml_tables.h): TOML refuses a table defined twice, and a split [loss]
// (keys added after [regularization]) once made every stored configuration unreadable.
BOOST_AUTO_TEST_CASE(a_split_section_is_written_as_one_table) {
  const std::string text = detail::toml_tables({{"loss.kind", "\"mse_mean\""},
                                                {"regularization.steer", "0.0"},
                                                {"loss.samples", "3"},
                                                {"run.epochs", "2"},
                                                {"regularization.jacobian_weight", "0.5"}});
  BOOST_TEST(text == "[loss]\nkind = \"mse_mean\"\nsamples = 3\n\n[regularization]\nsteer = 0.0\n"
                     "jacobian_weight = 0.5\n\n[run]\nepochs = 2\n");
  BOOST_CHECK_THROW(detail::toml_tables({{"epochs", "2"}}), std::logic_error);
  // Every section of the real writer once, and its text reads back to the same configuration.
  const Config c = Config::parse("[data]\nfile = \"x.h5\"\n[loss]\nkind = \"mse_mean\"\nsamples = 3\n", "c.toml");
  const std::string toml = c.to_toml();
  for (const std::string& key : Config::keys()) {
    const std::string header = "[" + key.substr(0, key.find('.')) + "]\n";
    const auto at = toml.find(header);
    BOOST_TEST((at != std::string::npos && toml.find(header, at + 1) == std::string::npos), header);
  }
  BOOST_TEST(Config::parse(toml, "printed").to_toml() == toml);
}
