// Each MPI rank reads only its shard of the dataset: under a real `mpirun -np 2` with
// run.balance = "static" and per-series units, every rank reads the values (hyperslabs) of the
// training and validation series it solves and no others, counted from the read log each process
// writes (CVNODE_READ_LOG); the normalisation is merged from the ranks' partial ExactSums; and the
// fit gives the same bits as one process that read everything: parameters, metrics and the
// validation errors in data units. Also with windows (a window belongs to its series' rank) and
// a separate validation file.
// ctest: labels=integration timeout=300
#define BOOST_TEST_MODULE mpi_shards
#include <boost/test/unit_test.hpp>

#include <filesystem>
#include <map>
#include <set>
#include <sstream>

#include "cvnode/checkpoint.h"
#include "cvnode/dataset.h"
#include "mpi_test_util.h"

using namespace cvnode;
using namespace cvnode::test;
namespace fs = std::filesystem;

namespace {

// The series (file indices) of `file` whose values each process read, from the CVNODE_READ_LOG
// files PREFIX.PID ("PATH FIRST COUNT" per hyperslab read): one set per process.
std::vector<std::set<long>> reads_per_process(const std::string& prefix, const std::string& file) {
  std::vector<std::set<long>> out;
  const fs::path dir = fs::path(prefix).parent_path();
  const std::string stem = fs::path(prefix).filename().string() + ".";
  for (const auto& e : fs::directory_iterator(dir)) {
    const std::string name = e.path().filename().string();
    if (name.rfind(stem, 0) != 0) continue;
    std::set<long> series;
    std::istringstream lines(read_text(e.path().string()));
    std::string path;
    long first = 0, count = 0;
    while (lines >> path >> first >> count)
      if (fs::equivalent(path, file))
        for (long i = first; i < first + count; ++i) series.insert(i);
    out.push_back(series);
  }
  return out;
}

// Reads of one fit: the np-1 run read every series; the two ranks read disjoint halves that
// together are the training and validation series (the test part is never read).
void expect_shards(const std::vector<std::set<long>>& ranks, const std::set<long>& needed) {
  BOOST_TEST_REQUIRE(ranks.size() == 2u, "one read log per rank expected, found " << ranks.size());
  std::set<long> both;
  for (long i : ranks[0]) BOOST_TEST(ranks[1].count(i) == 0u, "series " << i << " read by both ranks");
  for (const auto& r : ranks) both.insert(r.begin(), r.end());
  BOOST_TEST((both == needed), "the ranks read " << both.size() << " series, the fit needs " << needed.size());
  // Round-robin over the training and the validation positions: each rank holds half of each.
  const auto half = static_cast<long>(needed.size()) / 2;
  for (const auto& r : ranks) BOOST_TEST(std::abs(static_cast<long>(r.size()) - half) <= 1, r.size() << " of " << needed.size());
}

}  // namespace

BOOST_AUTO_TEST_CASE(two_ranks_read_their_shards_and_give_the_bits_of_one_process) {
  MpiRun m("shards");
  const std::string data = m.dir + "/lv.h5";
  write_lotka_volterra(data, 24, 15, 10.0, 7);
  const std::string cfg = std::string(CVNODE_SOURCE_DIR) + "/data/demo.toml";
  // 24 series: 16 train, 4 validation, 4 test (never read by the fit's ranks).
  const std::string args = " fit --config " + cfg + " --quiet --no-plots --set data.file=" + data +
                           " --set data.train_fraction=0.666667 --set data.val_fraction=0.166667"
                           " --set data.window=0 --set data.window_epochs=0 --set data.window_stages=[]"
                           " --set data.window_stage_epochs=[] --set run.batch_mode=per_series"
                           " --set run.balance=static --set run.batch_size=6 --set run.epochs=3"
                           " --set run.val_every=1 --set run.threads=1";
  m.run("CVNODE_READ_LOG=" + m.dir + "/one " + m.cli() + args + " --out " + m.dir + "/np1");
  // (Not quiet: the fit says how the ranks read the data.)
  const std::string loud = args.substr(0, args.find(" --quiet")) + args.substr(args.find(" --quiet") + 8);
  m.run("CVNODE_READ_LOG=" + m.dir + "/two " + m.mpirun(2) + loud + " --out " + m.dir + "/np2");
  BOOST_TEST(read_text(m.dir + "/cmd.log").find("each rank reads the values of its shard") != std::string::npos,
             read_text(m.dir + "/cmd.log"));
  expect_same_bits(m.dir + "/np1", m.dir + "/np2");

  const Dataset all = Dataset::read(data);
  const Split split = all.split(0.666667, 0.166667, 0);
  BOOST_TEST_REQUIRE(split.train.size() == 16u);
  BOOST_TEST_REQUIRE(split.validation.size() == 4u);
  std::set<long> needed(split.train.begin(), split.train.end());
  needed.insert(split.validation.begin(), split.validation.end());
  const auto one = reads_per_process(m.dir + "/one", data);
  BOOST_TEST_REQUIRE(one.size() == 1u);
  BOOST_TEST(one[0].size() == 24u);  // a single process reads the whole file
  expect_shards(reads_per_process(m.dir + "/two", data), needed);
  // The normalisation the two ranks merged is the one process's, bit for bit.
  const Checkpoint a = Checkpoint::read(m.dir + "/np1/latest.h5"), b = Checkpoint::read(m.dir + "/np2/latest.h5");
  BOOST_TEST_REQUIRE(a.normalization.mean.size() == 2);
  BOOST_TEST((a.normalization.mean.array() == b.normalization.mean.array()).all());
  BOOST_TEST((a.normalization.std.array() == b.normalization.std.array()).all());
  BOOST_TEST(a.metrics.at("train_loss").back() < a.metrics.at("train_loss").front());
}

BOOST_AUTO_TEST_CASE(windows_and_a_validation_file_are_read_by_shard_too) {
  MpiRun m("shards_files");
  const std::string train = m.dir + "/train.h5", val = m.dir + "/val.h5";
  write_lotka_volterra(train, 12, 15, 10.0, 8);
  write_lotka_volterra(val, 4, 15, 10.0, 9);
  const std::string cfg = std::string(CVNODE_SOURCE_DIR) + "/data/demo.toml";
  // Windows of 5 observations (started from the data: no model solve of whole series) for 2
  // epochs, then whole series; validation series from their own file.
  const std::string args = " fit --config " + cfg + " --quiet --no-plots --set data.file=" + train +
                           " --set data.validation_file=" + val +
                           " --set data.window=5 --set data.window_epochs=2 --set data.window_stages=[]"
                           " --set data.window_stage_epochs=[] --set data.window_start=zero"
                           " --set run.batch_mode=per_series --set run.balance=static --set run.batch_size=8"
                           " --set run.epochs=3 --set run.val_every=1 --set run.threads=1";
  m.run("CVNODE_READ_LOG=" + m.dir + "/one " + m.cli() + args + " --out " + m.dir + "/np1");
  m.run("CVNODE_READ_LOG=" + m.dir + "/two " + m.mpirun(2) + args + " --out " + m.dir + "/np2");
  expect_same_bits(m.dir + "/np1", m.dir + "/np2");
  std::set<long> every_train, every_val;
  for (long i = 0; i < 12; ++i) every_train.insert(i);
  for (long i = 0; i < 4; ++i) every_val.insert(i);
  expect_shards(reads_per_process(m.dir + "/two", train), every_train);
  expect_shards(reads_per_process(m.dir + "/two", val), every_val);
}
