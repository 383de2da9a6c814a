// What the `cvnode` commands refuse and what they report (issue 19 cases 6-11, issue 18's
// report defects): out-of-range options with the accepted range in the message, an output that
// is the input, sizes beyond the machine's memory, values whose squares overflow, metrics that
// cannot be computed shown as missing (never 0), a partial prediction exiting non-zero, eval's
// loss over the solved series, progress lines without "val nan", the units of the summary.
// ctest: labels=integration,sanitize timeout=240
#define BOOST_TEST_MODULE cli_options
#include <boost/test/unit_test.hpp>

#include <filesystem>
#include <regex>

#include "cvnode/dataset.h"
#include "data/hdf5_raii.h"
#include "test_util.h"
#include "cli_util.h"

using namespace cvnode;
using namespace cvnode::test;
namespace fs = std::filesystem;

namespace {

struct Env : FitSetup {
  std::string run;
};

// A dataset, a fit configuration and a finished 2-epoch run.
const Env& env() {
  static const Env e = [] {
    Env x;
    static_cast<FitSetup&>(x) = fit_setup("cli_options", 2);
    x.run = x.dir + "/run";
    const CliResult r = run_cli({"fit", "--config", x.config, "--out", x.run, "--quiet", "--no-plots"});
    if (r.exit_code != 0) throw std::runtime_error("fit failed: " + r.err);
    return x;
  }();
  return e;
}

bool has(const std::string& text, const std::string& part) { return text.find(part) != std::string::npos; }

// The command is refused before it does anything: exit 2 (CLI11's validation errors exit 105),
// no signal, and the message holds every fragment.
void refused(const std::vector<std::string>& args, const std::vector<std::string>& fragments) {
  const CliResult r = run_cli(args);
  std::string cmd;
  for (const auto& a : args) cmd += a + " ";
  BOOST_TEST_CONTEXT(cmd) {
    BOOST_TEST(r.signal == 0);
    BOOST_TEST(r.exit_code != 0, "accepted; stdout: " << r.out << " stderr: " << r.err);
    for (const auto& f : fragments) BOOST_TEST(has(r.err, f), "'" << f << "' not in: " << r.err);
  }
}

}  // namespace

// Case 9: options out of range are refused with their range, never replaced by a default.
BOOST_AUTO_TEST_CASE(numeric_options_are_validated_with_their_range) {
  const Env& e = env();
  const std::string ck = e.run + "/best.h5";
  refused({"predict", ck, "--rtol", "-1"}, {"--rtol", "-1", "(0, 1)"});
  refused({"predict", ck, "--rtol", "0"}, {"--rtol", "(0, 1)"});
  refused({"predict", ck, "--threads", "-1"}, {"--threads", "[0, 1024]"});
  refused({"predict", ck, "--extend", "-1"}, {"--extend", "[0, 1e+06]"});
  refused({"predict", ck, "--max-series", "-1"}, {"--max-series", "[0, 2147483647]"});
  refused({"predict", ck, "--atol", "nan"}, {"--atol", "not a finite number"});
  refused({"eval", ck, "--threads", "99999999999999999999"}, {"--threads", "[0, 1024]"});
  refused({"eval", ck, "--tolerances", "1e-3,-2"}, {"--tolerances", "'-2'", "(0, 1)"});
  refused({"bench", e.data, "--atol", "nan"}, {"--atol", "not a finite number"});
  refused({"bench", e.data, "--rtol", "inf"}, {"--rtol", "(0, 1)"});
  refused({"data", "generate", "--series", "0", "--out", e.dir + "/g.h5"}, {"--series", "[1, 2147483647]"});
  refused({"data", "generate", "--missing", "1.5", "--out", e.dir + "/g.h5"}, {"--missing", "[0, 1)"});
  refused({"fit", "--config", e.config, "--out", e.dir + "/x", "--stop-after-epoch", "-3"},
          {"--stop-after-epoch", "[0, 2147483647]"});
  refused({"predict", ck, "--times", "0:inf:5"}, {"--times", "STOP is not a finite number"});
  refused({"predict", ck, "--times", "0:1:0"}, {"--times", "COUNT is out of range"});
  // A configuration override that does not fit its key's type says what the key takes.
  refused({"fit", "--config", e.config, "--out", e.dir + "/y", "--set", "run.epochs=99999999999999999999"},
          {"run.epochs", "99999999999999999999", "out of range"});
  BOOST_TEST(!fs::exists(e.dir + "/g.h5"));
}

// Case 9: a grid no solve can cover (issue: 0:1e300:5; here from t = 4, after every series'
// first observation) fails every series: an error, not "0 series (1 failed)" and exit 0.
BOOST_AUTO_TEST_CASE(a_prediction_whose_series_fail_exits_non_zero) {
  const Env& e = env();
  const std::string out = e.dir + "/far.csv";
  const CliResult r = run_cli({"predict", e.run + "/best.h5", "--times", "4:1e300:5", "--out", out});
  BOOST_TEST(r.exit_code == 3, r.err);
  BOOST_TEST(has(r.err, "failed to solve"), r.err);
  BOOST_TEST(!fs::exists(out), "a prediction without a single solved series was written");
}

// Case 6: the output of a command is never its input.
BOOST_AUTO_TEST_CASE(an_output_is_never_the_input) {
  const Env& e = env();
  const std::string csv = e.dir + "/same.csv";
  BOOST_TEST_REQUIRE(run_cli({"data", "export-csv", e.data, "--out", csv}).exit_code == 0);
  const std::string before = read_file(csv);
  refused({"data", "import-csv", csv, "--id", "id", "--values", "prey,predator", "--out", csv}, {"is the input", csv});
  BOOST_TEST((read_file(csv) == before), "the CSV was replaced");
  // Also through another name for the same file.
  fs::create_symlink(csv, e.dir + "/link.h5");
  refused({"data", "import-csv", csv, "--id", "id", "--values", "prey,predator", "--out", e.dir + "/link.h5"}, {"is the input"});
  BOOST_TEST((read_file(csv) == before));
  const std::string data_before = read_file(e.data);
  refused({"data", "export-csv", e.data, "--out", e.data}, {"is the input"});
  refused({"predict", e.run + "/best.h5", "--out", e.data}, {"is the input"});
  refused({"eval", e.run + "/best.h5", "--json", e.run + "/best.h5"}, {"is the input"});
  BOOST_TEST((read_file(e.data) == data_before));
}

// Case 10: sizes are checked before they are allocated.
BOOST_AUTO_TEST_CASE(sizes_beyond_the_machine_are_refused_with_the_number) {
  const Env& e = env();
  refused({"data", "generate", "--series", "100000000", "--observations", "100000000", "--out", e.dir + "/huge.h5"},
          {"100000000 series x 100000000 observations", "needs about", "more than this machine's memory"});
  BOOST_TEST(!fs::exists(e.dir + "/huge.h5"));
  refused({"fit", "--config", e.config, "--out", e.dir + "/wide", "--set", "model.hidden=[20000, 20000]"},
          {"model.hidden = [20000, 20000]", "network parameters", "needs about", "more than this machine's memory"});
  BOOST_TEST(!fs::exists(e.dir + "/wide"));
}

// Case 8: values whose squares overflow are refused at import and at the start of a fit.
BOOST_AUTO_TEST_CASE(values_whose_squares_overflow_are_refused) {
  const Env& e = env();
  const std::string csv = e.dir + "/huge.csv";
  std::ofstream(csv) << "id,time,x\na,0,1\na,1,1e300\na,2,3\n";
  refused({"data", "import-csv", csv, "--id", "id", "--values", "x", "--out", e.dir + "/huge_values.h5"},
          {csv, "1e+300", "square overflows"});
  // A file written by another tool (as h5py would): refused when the fit reads it.
  {
    h5::File f = h5::File::create_checked(e.dir + "/huge_values.h5", 0);
    f.write_string_attribute("format", "cvnode-dataset");
    f.write_int_attribute("format_version", 1);
    f.write_string_array_attribute("channel_names", {"x"});
    f.write_string_array_attribute("channel_units", {""});
    f.write_strings("series_id", {"s0", "s1", "s2", "s3"});
    const std::vector<double> t0(4, 0.0), times{0, 1, 0, 1, 0, 1, 0, 1}, values{1, 2, 1, 2, 1, -1e200, 1, 2};
    const std::vector<std::int64_t> offsets{0, 2, 4, 6, 8};
    const std::vector<std::uint8_t> mask(8, 1);
    f.write_doubles("t0", t0.data(), {4});
    f.write_int64("offsets", offsets.data(), offsets.size());
    f.write_doubles("times", times.data(), {8});
    f.write_doubles("values", values.data(), {8, 1});
    f.write_uint8("mask", mask.data(), {8, 1});
    f.close();
  }
  std::ofstream(e.dir + "/huge.toml") << "[data]\nfile = \"huge_values.h5\"\n[model]\nhidden = [4]\n[run]\nepochs = 1\n";
  refused({"fit", "--config", e.dir + "/huge.toml", "--out", e.dir + "/huge_run"},
          {"huge_values.h5", "series 's2'", "-1e+200", "square overflows"});
}

// Case 11: a checkpoint given where a dataset belongs is named as such.
BOOST_AUTO_TEST_CASE(a_checkpoint_given_as_a_dataset_is_named) {
  const Env& e = env();
  refused({"data", "info", e.run + "/best.h5"}, {"this is a checkpoint of `cvnode fit`, not a dataset"});
  refused({"predict", e.data}, {"this is a cvnode dataset, not a checkpoint"});
}

// Case 7 and issue 18: when every validation series fails, no RMSE is printed as 0 (the
// summary and metrics.csv say it is missing), no best.h5 is named, and eval shows n/a.
BOOST_AUTO_TEST_CASE(metrics_that_cannot_be_computed_are_missing) {
  const Env& e = env();
  const std::string out = e.dir + "/failing";
  // One step per observation interval: every solve gives up (training steps are then skipped).
  CliResult r = run_cli({"fit", "--config", e.config, "--out", out, "--no-plots", "--set", "solver.max_steps=1",
                         "--set", "run.epochs=1"});
  BOOST_TEST(r.exit_code == 0, r.err);
  BOOST_TEST(!has(r.out, "overall 0\n"), r.out);
  BOOST_TEST(has(r.out, "RMSE not available"), r.out);
  BOOST_TEST(!fs::exists(out + "/best.h5"));
  BOOST_TEST(!has(r.out, out + "/best.h5"), "names a best.h5 that was never written: " << r.out);
  const std::string metrics = read_file(out + "/metrics.csv");
  const std::string row = metrics.substr(metrics.find('\n') + 1);
  // epoch,lr,train_loss,val_loss,val_rmse,...: val_rmse is nan (missing), not 0.
  std::vector<std::string> cells;
  std::stringstream in(row);
  for (std::string c; std::getline(in, c, ',');) cells.push_back(c);
  BOOST_TEST_REQUIRE(cells.size() >= 5u);
  BOOST_TEST(cells[4] == "nan", row);
  r = run_cli({"eval", out + "/latest.h5", "--tolerances", "1e-3"});
  BOOST_TEST(r.exit_code == 0, r.err);
  BOOST_TEST(has(r.out, "(3 failed)"), r.out);
  BOOST_TEST(has(r.out, "loss (normalised units) n/a"), r.out);
  BOOST_TEST(std::regex_search(r.out, std::regex("\\n  prey +n/a +n/a ")), r.out);
}

// Issue 18: eval's loss "over the solved ones only" is that, not +inf, when some series fail.
BOOST_AUTO_TEST_CASE(eval_reports_the_loss_of_the_solved_series) {
  const Env& e = env();
  // A step budget that some validation series exceed and others do not.
  bool partial = false;
  for (int steps : {3, 4, 5, 6, 8, 10, 12, 16, 20, 30}) {
    const CliResult r = run_cli({"eval", e.run + "/best.h5", "--split", "all", "--tolerances", "1e-3", "--set",
                                 "solver.max_steps=" + std::to_string(steps)});
    BOOST_TEST_REQUIRE(r.exit_code == 0, r.err);
    std::smatch m;
    if (!std::regex_search(r.out, m, std::regex("(\\d+) series \\((\\d+) failed\\)"))) continue;
    const int n = std::stoi(m[1]), failed = std::stoi(m[2]);
    if (failed == 0 || failed == n) continue;
    partial = true;
    BOOST_TEST(has(r.out, "the solved ones only"), r.out);
    BOOST_TEST(!has(r.out, "units) inf"), r.out);
    BOOST_TEST(std::regex_search(r.out, std::regex("loss \\(normalised units\\) [0-9.e+-]+\\n")), r.out);
    break;
  }
  BOOST_TEST(partial, "no step budget gave a partial failure");
}

// Issue 18: progress lines say nothing about validation on epochs that do not validate, and
// the summary names the units of its errors.
BOOST_AUTO_TEST_CASE(progress_lines_and_units) {
  const Env& e = env();
  CliResult r = run_cli({"fit", "--config", e.config, "--out", e.dir + "/progress", "--no-plots", "--set",
                         "run.val_every=2"});
  BOOST_TEST(r.exit_code == 0, r.err);
  BOOST_TEST(!has(r.err, "val nan"), r.err);
  BOOST_TEST(std::regex_search(r.err, std::regex("epoch +1/2  train [0-9.e+-]+  nfe")), r.err);
  BOOST_TEST(std::regex_search(r.err, std::regex("epoch +2/2  train [0-9.e+-]+  val [0-9.e+-]+  rmse")), r.err);
  // The errors of the summary are in data units (denormalised), with or without normalisation.
  BOOST_TEST(has(r.out, "RMSE per channel (data units)"), r.out);
  BOOST_TEST(!has(r.out, "normalised"), r.out);
  r = run_cli({"fit", "--config", e.config, "--out", e.dir + "/raw_units", "--no-plots", "--quiet", "--set",
               "data.normalize=false"});
  BOOST_TEST(r.exit_code == 0, r.err);
  BOOST_TEST(has(r.out, "RMSE per channel (data units)"), r.out);
  BOOST_TEST(!has(r.out, "normalised"), r.out);
}
