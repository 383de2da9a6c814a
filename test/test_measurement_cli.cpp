// Issue 12's workflows through the `cvnode` program itself: what a user types, what it refuses,
// and the numbers it reports.
#define BOOST_TEST_MODULE measurement_cli
#include <boost/test/unit_test.hpp>

#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "cvnode/dataset.h"

using namespace cvnode;
namespace fs = std::filesystem;

namespace {

const std::string kCli = std::string(CVNODE_BINARY_DIR) + "/apps/cvnode";

std::string temp_dir() {
  static std::string dir = [] {
    std::string t = (fs::temp_directory_path() / "cvnode_measurement_cli_XXXXXX").string();
    if (!mkdtemp(t.data())) throw std::runtime_error("mkdtemp failed");
    return t;
  }();
  return dir;
}

std::string read_all(const std::string& p) {
  std::ifstream f(p);
  std::stringstream s;
  s << f.rdbuf();
  return s.str();
}

// Runs `cvnode ARGS` with stdout and stderr to a file; the exit code and the text.
std::pair<int, std::string> run_cli(const std::string& args) {
  const std::string out = temp_dir() + "/out.txt";
  std::fflush(stdout);
  const int rc = std::system((kCli + " " + args + " > " + out + " 2>&1").c_str());
  return {WIFEXITED(rc) ? WEXITSTATUS(rc) : -1, read_all(out)};
}

std::string write_text(const std::string& name, const std::string& text) {
  const std::string p = temp_dir() + "/" + name;
  std::ofstream(p) << text;
  return p;
}

}  // namespace

BOOST_AUTO_TEST_CASE(import_csv_needs_the_channel_columns_named) {
  BOOST_TEST_REQUIRE(fs::exists(kCli), "build the cvnode program first: " << kCli);
  const std::string csv = write_text("vitals.csv", "id,time,temp,pulse,note\na,0,37.1,70,1\na,1,37.4,72,2\n");
  const std::string h5 = temp_dir() + "/vitals.h5";
  // Without --values nothing is guessed: the refusal names the file and the candidates.
  const auto [rc, text] = run_cli("data import-csv " + csv + " --id id --out " + h5);
  BOOST_TEST(rc != 0);
  BOOST_TEST(text.find(csv + ": --values is not given") != std::string::npos, text);
  BOOST_TEST(text.find("among temp, pulse, note") != std::string::npos, text);
  BOOST_TEST(!fs::exists(h5));
  // Named, they are the channels (the other column is not read).
  const auto [rc2, text2] = run_cli("data import-csv " + csv + " --id id --values temp,pulse --out " + h5);
  BOOST_TEST_REQUIRE(rc2 == 0, text2);
  const Dataset d = Dataset::read(h5);
  BOOST_TEST(d.channel_names() == (std::vector<std::string>{"temp", "pulse"}));
  BOOST_TEST(d.series(0).values(1, 0) == 37.4);
  // export-csv prints the command that reads its file back, --values included.
  const auto [rc3, text3] = run_cli("data export-csv " + h5 + " --out " + temp_dir() + "/back.csv");
  BOOST_TEST_REQUIRE(rc3 == 0, text3);
  BOOST_TEST(text3.find("--id id --values temp,pulse") != std::string::npos, text3);
}
