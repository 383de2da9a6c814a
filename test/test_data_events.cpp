// Dataset format version 2: per-series event tables (doses, infusions, resets) with their
// validation, reading of version 1 files, and the pharmacometric event layout (NONMEM, Monolix,
// nlmixr2, Pumas) in and out, exactly.
// ctest: labels=unit,sanitize timeout=120
#define BOOST_TEST_MODULE data_events
#include <boost/test/unit_test.hpp>

#include <unistd.h>

#include <cmath>
#include <fstream>
#include <functional>
#include <iterator>

#include "cvnode/csv.h"
#include "cvnode/dataset.h"
#include "cvnode/errors.h"
#include "cvnode/nonmem.h"
#include "cvnode/pk.h"
#include "data/hdf5_raii.h"
#include "test_util.h"

using namespace cvnode;

namespace {

std::string temp_dir() {
  static const std::string dir = cvnode::test::make_temp_dir("data_events");  // removed at exit
  return dir;
}

std::string write_text(const std::string& name, const std::string& text) {
  const std::string path = temp_dir() + "/" + name;
  std::ofstream(path, std::ios::binary) << text;
  return path;
}

std::string slurp(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

void expect_error(const std::function<void()>& f, const std::vector<std::string>& fragments) {
  try {
    f();
    BOOST_ERROR("no DataError; expected one mentioning '" + fragments.front() + "'");
  } catch (const DataError& e) {
    const std::string msg = e.what();
    BOOST_TEST_MESSAGE("message: " << msg);
    for (const auto& fr : fragments) BOOST_CHECK_MESSAGE(msg.find(fr) != std::string::npos, "'" << fr << "' not in: " << msg);
  }
}

// Everything a series holds, compared exactly (NaN-aware on masked values).
void check_same(const Dataset& a, const Dataset& b) {
  BOOST_REQUIRE_EQUAL(a.size(), b.size());
  BOOST_CHECK(a.channel_names() == b.channel_names());
  BOOST_CHECK(a.channel_units() == b.channel_units());
  BOOST_CHECK(a.covariate_names() == b.covariate_names());
  BOOST_CHECK(a.control_names() == b.control_names());
  BOOST_CHECK(a.compartment_names() == b.compartment_names());
  BOOST_CHECK_EQUAL(a.control_interpolation(), b.control_interpolation());
  for (std::size_t i = 0; i < a.size(); ++i) {
    const Series x = a.series(i), y = b.series(i);
    BOOST_TEST_CONTEXT("series " << x.id) {
      BOOST_CHECK_EQUAL(x.id, y.id);
      BOOST_CHECK_EQUAL(x.t0, y.t0);
      BOOST_CHECK(x.times == y.times);
      BOOST_CHECK(x.mask == y.mask);
      for (Eigen::Index e = 0; e < x.values.size(); ++e)
        if (x.mask(e)) BOOST_CHECK_EQUAL(x.values(e), y.values(e));
      BOOST_CHECK(x.covariates == y.covariates);
      BOOST_CHECK(x.control_times == y.control_times);
      BOOST_CHECK(x.control_values == y.control_values);
      BOOST_CHECK(x.events == y.events);
    }
  }
}

// A dataset with every kind of content: two channels (one partly missing, one row all missing),
// covariates, piecewise-constant controls starting before t0, doses, an infusion, a reset and a
// reset with a dose, and a t0 before every record.
Dataset everything() {
  Dataset d({"conc", "effect"}, {"mg/L", "%"});
  d.set_covariate_names({"WT", "AGE"});
  d.set_control_names({"food"});
  d.set_compartment_names({"depot", "central", "effect site"});
  for (int i = 0; i < 4; ++i) {
    Series s;
    s.id = i == 2 ? "subject, \"two\"" : "s" + std::to_string(i);
    s.t0 = i == 1 ? -0.5 : 0.0;
    s.times = (Vector(5) << 0.25, 1.0, 2.5, 4.0 + i, 12.0).finished();
    s.values = Matrix::Random(5, 2).array().abs() + 0.1 * i;
    s.mask = Matrix::Ones(5, 2);
    s.mask(1, 1) = 0;
    if (i == 3) s.mask.row(2).setZero();  // a masked observation time (MDV = 1)
    s.covariates = (Vector(2) << 60.5 + i, 30 + 2 * i).finished();
    s.control_times = (Vector(3) << -1.0 + i * 0.25, 1.0, 4.0 + i).finished();  // knots at obs times too
    s.control_values = (Matrix(3, 1) << 0.0, 1.5, 0.25 * i).finished();
    s.events.push_back(EventRecord{0.0, 0, 100.0 / (i + 1), 0, Evid::Dose});
    s.events.push_back(EventRecord{1.0, 1, 5.0, 2.5, Evid::Dose});  // an infusion at an observation time
    if (i == 2) s.events.push_back(EventRecord{3.0, 0, 0.0, 0, Evid::Reset});
    if (i == 3) s.events.push_back(EventRecord{6.0, 2, 0.1, 0, Evid::ResetDose});
    s.events.push_back(EventRecord{12.0, 0, 1e-7, 0, Evid::Dose});  // at the last observation time
    d.add(s);
  }
  return d;
}

}  // namespace

BOOST_AUTO_TEST_CASE(events_round_trip_through_hdf5_and_set_the_version) {
  const Dataset d = everything();
  BOOST_CHECK_EQUAL(d.event_count(), 14u);
  BOOST_CHECK_EQUAL(d.format_version(), 2);
  const std::string path = temp_dir() + "/events.h5";
  d.write(path);
  check_same(d, Dataset::read(path));
  {
    const h5::File f = h5::File::open_read(path);
    BOOST_CHECK_EQUAL(f.int_attribute("format_version"), 2);
  }
  // Range reads and subsets carry each series' own events.
  check_same(d.subset({1, 2}), Dataset::read_range(path, 1, 2));
  BOOST_CHECK(Dataset::read_range(path, 3, 1).series(0).events == d.series(3).events);
  // Without events a file is still version 1, readable by an older cvnode.
  Dataset plain({"x"}, {});
  Series s;
  s.id = "a";
  s.times = Vector::LinSpaced(3, 0, 1);
  s.values = Matrix::Ones(3, 1);
  plain.add(s);
  plain.write(temp_dir() + "/plain.h5");
  const h5::File f = h5::File::open_read(temp_dir() + "/plain.h5");
  BOOST_CHECK_EQUAL(f.int_attribute("format_version"), 1);
}

namespace {

// A version-2 file as another tool would write it, every event field editable.
struct RawEvents {
  long version = 2;
  std::vector<std::string> compartments{"depot", "central"};
  bool write_compartments = true;
  std::vector<std::int64_t> event_offsets{0, 2, 3};
  std::vector<double> times{0.0, 1.0, 0.5};
  std::vector<std::int64_t> cmt{0, 0, 1};
  std::vector<double> amount{10, 10, 5};
  std::vector<double> rate{0, 0, 1};
  std::vector<std::uint8_t> kind{1, 1, 1};

  std::string write(const std::string& name) const {
    const std::string path = temp_dir() + "/" + name + ".h5";
    h5::File f = h5::File::create_checked(path, 0);
    f.write_string_attribute("format", "cvnode-dataset");
    f.write_int_attribute("format_version", version);
    f.write_string_array_attribute("channel_names", {"conc"});
    f.write_string_array_attribute("channel_units", {"mg/L"});
    if (write_compartments) f.write_string_array_attribute("compartment_names", compartments);
    const std::vector<std::string> ids{"s0", "s1"};
    const std::vector<double> t0{0, 0}, obs_times{0.5, 1.0, 2.0, 0.1, 0.7}, values{1, 2, 3, 4, 5};
    const std::vector<std::int64_t> offsets{0, 3, 5};
    const std::vector<std::uint8_t> mask(5, 1);
    f.write_strings("series_id", ids);
    f.write_doubles("t0", t0.data(), {2});
    f.write_int64("offsets", offsets.data(), offsets.size());
    f.write_doubles("times", obs_times.data(), {5});
    f.write_doubles("values", values.data(), {5, 1});
    f.write_uint8("mask", mask.data(), {5, 1});
    f.write_int64("event_offsets", event_offsets.data(), event_offsets.size());
    f.write_doubles("event_times", times.data(), {times.size()});
    f.write_int64("event_compartment", cmt.data(), cmt.size());
    f.write_doubles("event_amount", amount.data(), {amount.size()});
    f.write_doubles("event_rate", rate.data(), {rate.size()});
    f.write_uint8("event_kind", kind.data(), {kind.size()});
    f.close();
    return path;
  }
};

void expect_read_error(const std::string& path, const std::vector<std::string>& fragments) {
  std::vector<std::string> all = fragments;
  all.insert(all.begin(), path);
  expect_error([&] { Dataset::read(path); }, all);
}

}  // namespace

BOOST_AUTO_TEST_CASE(bad_event_tables_name_file_series_field_and_value) {
  const Dataset good = Dataset::read(RawEvents{}.write("good"));
  BOOST_CHECK_EQUAL(good.series(0).events.size(), 2u);
  BOOST_CHECK_EQUAL(good.series(1).events[0].duration(), 5.0);
  RawEvents r;
  r.amount[1] = -10;
  expect_read_error(r.write("negative"), {"series 's0' (index 0)", "field 'event_amount'", "event_amount[1] = -10",
                                          "must be finite and >= 0"});
  r = RawEvents{};
  r.times[2] = -0.25;
  expect_read_error(r.write("before"), {"series 's1' (index 1)", "field 'event_times'", "event_times[0] = -0.25",
                                        "lies before t0 = 0"});
  r = RawEvents{};
  r.times[1] = 2.5;
  expect_read_error(r.write("after"), {"series 's0'", "event_times[1] = 2.5", "after the series' last observation time 2"});
  r = RawEvents{};
  r.cmt[2] = 2;
  expect_read_error(r.write("compartment"), {"series 's1'", "field 'event_compartment'", "event_compartment[0] = 2",
                                             "is not a compartment (0..1: depot central)"});
  r = RawEvents{};
  r.kind[0] = 7;
  expect_read_error(r.write("kind"), {"series 's0'", "field 'event_kind'", "event_kind[0] = 7",
                                      "not an event code this cvnode knows"});
  r = RawEvents{};
  r.kind[0] = 3;
  expect_read_error(r.write("reset_amount"), {"series 's0'", "event_amount[0] = 10", "on a reset"});
  r = RawEvents{};
  r.rate[2] = -1;
  expect_read_error(r.write("rate"), {"series 's1'", "field 'event_rate'", "event_rate[0] = -1"});
  r = RawEvents{};
  std::swap(r.times[0], r.times[1]);
  expect_read_error(r.write("order"), {"series 's0'", "events must be in time order"});
  r = RawEvents{};
  r.event_offsets = {0, 2, 2};
  expect_read_error(r.write("offsets"), {"dataset 'event_offsets'", "event_offsets[2] = 2",
                                         "expected the number of events 3"});
  r = RawEvents{};
  r.write_compartments = false;
  expect_read_error(r.write("no_names"), {"attribute 'compartment_names': missing (the file has events)"});
  // A version-1 file does not hold events: its event datasets are unknown, as a typo would be.
  r = RawEvents{};
  r.version = 1;
  expect_read_error(r.write("v1"), {"not part of format version 1"});
}

BOOST_AUTO_TEST_CASE(bad_events_are_refused_when_building) {
  Dataset d({"conc"}, {});
  Series s;
  s.id = "a";
  s.times = Vector::LinSpaced(3, 1, 3);
  s.values = Matrix::Ones(3, 1);
  s.t0 = 0;
  s.events = {EventRecord{0.5, 0, 1, 0, Evid::Dose}};
  expect_error([&] { d.add(s); }, {"series 'a' (index 0)", "event_compartment[0] = 0", "the data name no compartments"});
  d.set_compartment_names({"gut"});
  d.add(s);
  s.id = "b";
  s.events[0].amount = -1;
  expect_error([&] { d.add(s); }, {"series 'b'", "event_amount[0] = -1"});
  s.events[0] = EventRecord{3.5, 0, 1, 0, Evid::Dose};
  expect_error([&] { d.add(s); }, {"series 'b'", "event_times[0] = 3.5", "after the series' last observation time 3"});
  expect_error([&] { d.set_compartment_names({"gut", "gut"}); }, {"compartment name 'gut' appears twice"});
}

BOOST_AUTO_TEST_CASE(nonmem_layout_reads_doses_observations_and_covariates) {
  // A NONMEM file as a pharmacometrician writes it: '.' for nulls, records of a subject out of
  // time order, an observation with MDV = 1, an infusion (RATE), ADDL/II repetitions, a
  // trailing-dose record at the last sample, lower-case names (nlmixr2) for some columns.
  const std::string csv =
      "id,TIME,DV,AMT,EVID,CMT,MDV,RATE,ADDL,II,WT,SEX\n"
      "1,0,.,100,1,1,1,0,2,12,72.5,0\n"
      "1,1,3.1,.,0,2,0,.,.,.,72.5,0\n"
      "1,0.5,1.84,.,0,2,0,.,.,.,72.5,0\n"
      "1,2,.,.,0,2,1,.,.,.,72.5,0\n"
      "1,30,2.5,.,0,2,0,.,.,.,,0\n"
      "2,0,.,50,1,2,1,25,0,0,60,1\n"
      "2,1,1.2,.,0,2,0,.,.,.,60,1\n"
      "2,4,0.9,.,0,2,0,.,.,.,60,1\n"
      "2,4,.,50,1,1,1,0,.,.,60,1\n";
  NonmemImportOptions o;
  o.covariate_columns = {"WT", "SEX"};
  o.compartment_names = {"depot", "central"};
  o.channel_names = {"conc"};
  o.units = {"mg/L"};
  const NonmemImport r = import_nonmem_csv(write_text("nm.csv", csv), o);
  const Dataset& d = r.data;
  BOOST_REQUIRE_EQUAL(d.size(), 2u);
  BOOST_CHECK(d.channel_names() == std::vector<std::string>{"conc"});
  const Series a = d.series(0), b = d.series(1);
  BOOST_CHECK_EQUAL(a.id, "1");
  BOOST_CHECK_EQUAL(a.t0, 0.0);
  BOOST_CHECK(a.times == (Vector(4) << 0.5, 1, 2, 30).finished());
  BOOST_CHECK_EQUAL(a.values(0, 0), 1.84);
  BOOST_CHECK_EQUAL(a.mask(2, 0), 0.0);  // MDV = 1: a masked observation time
  // The dose at 0 and its two ADDL repetitions at 12 and 24 (before the last sample at 30).
  BOOST_REQUIRE_EQUAL(a.events.size(), 3u);
  BOOST_CHECK(a.events[2] == (EventRecord{24, 0, 100, 0, Evid::Dose}));
  BOOST_CHECK(a.covariates == (Vector(2) << 72.5, 0).finished());
  // Subject 2: an infusion into the central compartment (rate 25: 2 h), a dose at the last sample.
  BOOST_REQUIRE_EQUAL(b.events.size(), 2u);
  BOOST_CHECK(b.events[0] == (EventRecord{0, 1, 50, 25, Evid::Dose}));
  BOOST_CHECK_EQUAL(b.events[0].duration(), 2.0);
  BOOST_CHECK_EQUAL(b.events[1].time, 4.0);
  BOOST_CHECK_EQUAL(r.notes.size(), 2u);  // the MDV = 1 record and the ADDL expansion
}

BOOST_AUTO_TEST_CASE(nonmem_long_layout_dvid_and_controls) {
  // Two outputs in the long layout (DVID), a time-varying input given on EVID 2 records and on
  // observation records, and an EVID 2 record marking t0 before the first dose.
  const std::string csv =
      "ID,TIME,DV,DVID,AMT,EVID,MDV,FOOD\n"
      "a,-1,.,.,.,2,1,.\n"
      "a,0,.,.,10,1,1,0\n"
      "a,1,5,1,.,0,0,.\n"
      "a,1,0.5,2,.,0,0,.\n"
      "a,2,.,.,.,2,1,1\n"
      "a,3,4,1,.,0,0,0\n";
  NonmemImportOptions o;
  o.dvid = "DVID";
  o.channel_names = {"parent", "metabolite"};
  o.control_columns = {"FOOD"};
  const Dataset d = import_nonmem_csv(write_text("dvid.csv", csv), o).data;
  BOOST_REQUIRE_EQUAL(d.size(), 1u);
  const Series s = d.series(0);
  BOOST_CHECK_EQUAL(s.t0, -1.0);
  BOOST_CHECK(s.times == (Vector(2) << 1, 3).finished());
  BOOST_CHECK_EQUAL(s.values(0, 0), 5.0);
  BOOST_CHECK_EQUAL(s.values(0, 1), 0.5);
  BOOST_CHECK_EQUAL(s.mask(1, 1), 0.0);
  BOOST_CHECK(s.control_times == (Vector(3) << 0, 2, 3).finished());
  BOOST_CHECK(s.control_values.col(0) == (Vector(3) << 0, 1, 0).finished());
  BOOST_CHECK(d.compartment_names() == std::vector<std::string>{"cmt1"});  // no CMT column: compartment 1
}

BOOST_AUTO_TEST_CASE(nonmem_bad_records_name_line_column_and_value) {
  NonmemImportOptions o;
  o.compartment_names = {"depot", "central"};
  auto check = [&](const std::string& name, const std::string& body, const std::vector<std::string>& fragments,
                   const NonmemImportOptions& opt) {
    const std::string p = write_text(name + ".csv", "ID,TIME,DV,AMT,EVID,CMT,MDV\n" + body);
    std::vector<std::string> all = fragments;
    all.insert(all.begin(), p);
    expect_error([&] { import_nonmem_csv(p, opt); }, all);
  };
  check("evid", "1,0,.,10,5,1,1\n1,1,2,.,0,2,0\n", {":2:", "column 'EVID'", "EVID 5 is not an event code"}, o);
  check("negative", "1,0,.,-10,1,1,1\n1,1,2,.,0,2,0\n", {":2:", "column 'AMT'", "negative amount -10"}, o);
  check("cmt", "1,0,.,10,1,3,1\n1,1,2,.,0,2,0\n", {":2:", "column 'CMT'", "CMT 3 is not a compartment",
                                                   "the data have 2: depot, central"}, o);
  check("cmt0", "1,0,.,10,1,0,1\n1,1,2,.,0,2,0\n", {":2:", "CMT 0 is not a compartment"}, o);
  check("after", "1,0,.,10,1,1,1\n1,1,2,.,0,2,0\n1,5,.,10,1,1,1\n",
        {":4:", "subject '1'", "dose at time 5 comes after the subject's last observation at 1"}, o);
  check("noobs", "1,0,.,10,1,1,1\n", {":2:", "subject '1'", "no observation records"}, o);
  check("dv", "1,0,.,10,1,1,1\n1,1,abc,.,0,2,0\n", {":3:", "column 'DV'", "value 'abc' is not a finite number"}, o);
  check("mdv", "1,0,.,10,1,1,1\n1,1,2,.,0,2,7\n", {":3:", "column 'MDV'", "MDV '7' must be 0 or 1"}, o);
  check("dup", "1,0,.,10,1,1,1\n1,1,2,.,0,2,0\n1,1,3,.,0,2,0\n", {":4:", "channel 'DV' at time 1 repeats line 3"}, o);
  // Columns no option names are refused, with their names.
  const std::string extra = write_text("extra.csv", "ID,TIME,DV,AMT,EVID,CMT,MDV,WT,AGE\n1,0,.,10,1,1,1,70,30\n");
  expect_error([&] { import_nonmem_csv(extra, o); }, {extra, "columns WT, AGE are not used", "--covariates"});
  // A covariate that changes within a subject is not static.
  NonmemImportOptions c = o;
  c.covariate_columns = {"WT", "AGE"};
  const std::string varying = write_text("varying.csv", "ID,TIME,DV,AMT,EVID,CMT,MDV,WT,AGE\n"
                                                        "1,0,.,10,1,1,1,70,30\n1,1,2,.,0,2,0,72,30\n");
  expect_error([&] { import_nonmem_csv(varying, c); }, {varying + ":3:", "covariate 'WT' is 72 here and 70 on line 2"});
  // Modelled rates and steady state are refused by name.
  const std::string rate = write_text("rate.csv", "ID,TIME,DV,AMT,EVID,CMT,MDV,RATE,SS\n1,0,.,10,1,1,1,-2,0\n1,1,2,.,0,2,0,.,.\n");
  expect_error([&] { import_nonmem_csv(rate, o); }, {rate + ":2:", "RATE -2", "not supported"});
  const std::string ss = write_text("ss.csv", "ID,TIME,DV,AMT,EVID,CMT,MDV,RATE,SS\n1,0,.,10,1,1,1,0,1\n1,1,2,.,0,2,0,.,.\n");
  expect_error([&] { import_nonmem_csv(ss, o); }, {ss + ":2:", "SS 1", "steady-state dosing"});
}

BOOST_AUTO_TEST_CASE(event_layout_export_then_import_is_exact) {
  const Dataset d = everything();
  const std::string out = temp_dir() + "/everything.csv";
  const auto notes = export_nonmem_csv(d, out);
  BOOST_CHECK(notes.empty());
  const NonmemImportOptions o = export_import_options(d);
  BOOST_CHECK_EQUAL(import_command_arguments(o),
                    "--format nonmem --values conc,effect --units mg/L,% --covariates WT,AGE --controls food "
                    "--compartments 'depot,central,effect site'");
  const Dataset back = import_nonmem_csv(out, o).data;
  check_same(d, back);
  // And the export of the re-import is the same bytes.
  const std::string again = temp_dir() + "/everything_again.csv";
  export_nonmem_csv(back, again);
  BOOST_CHECK(slurp(out) == slurp(again));
  // One channel: a NONMEM file with DV, and linear controls keep their interpolation.
  Dataset one({"conc"}, {"mg/L"});
  one.set_compartment_names({"depot", "central"});
  one.set_control_names({"u"});
  one.set_control_interpolation("linear");
  const Dataset e = everything();
  for (std::size_t i = 0; i < e.size(); ++i) {
    Series s = e.series(i);
    s.values = s.values.col(0).eval();
    s.mask = s.mask.col(0).eval();
    s.covariates.resize(0);
    for (auto& ev : s.events) ev.compartment = std::min(ev.compartment, 1);
    one.add(s);
  }
  const std::string single = temp_dir() + "/single.csv";
  export_nonmem_csv(one, single);
  BOOST_CHECK(slurp(single).rfind("ID,TIME,DV,AMT,EVID,CMT,MDV,RATE,u\n", 0) == 0);
  check_same(one, import_nonmem_csv(single, export_import_options(one)).data);
}

BOOST_AUTO_TEST_CASE(rows_layout_takes_covariates_and_controls) {
  const std::string csv =
      "id,t,x,wt,u\n"
      "a,0,1,70,0\n"
      "a,1,2,,\n"
      "a,2,3,70,1\n"
      "b,0,4,55,2\n";
  CsvImportOptions o;
  o.id_column = "id";
  o.time_column = "t";
  o.covariate_columns = {"wt"};
  o.control_columns = {"u"};
  const Dataset d = import_csv(write_text("rows_inputs.csv", csv), o);  // no --values: x only
  BOOST_CHECK(d.channel_names() == std::vector<std::string>{"x"});
  BOOST_CHECK_EQUAL(d.series(0).covariates[0], 70.0);
  BOOST_CHECK(d.series(0).control_times == (Vector(2) << 0, 2).finished());
  BOOST_CHECK_EQUAL(d.series(1).control_values(0, 0), 2.0);
  // Controls have no exact place in the rows layout: export refuses and points to the event layout.
  expect_error([&] { export_csv(d, temp_dir() + "/rows_out.csv"); }, {"controls", "--format nonmem"});
  // Covariates do: a column repeated on every row, read back exactly.
  Dataset no_controls({"x"}, {});
  no_controls.set_covariate_names({"wt"});
  for (std::size_t i = 0; i < d.size(); ++i) {
    Series s = d.series(i);
    s.control_times.resize(0);
    s.control_values.resize(0, 0);
    no_controls.add(s);
  }
  const std::string out = temp_dir() + "/rows_cov.csv";
  export_csv(no_controls, out);
  BOOST_CHECK_EQUAL(slurp(out), "id,time,x,wt\na,0,1,70\na,1,2,70\na,2,3,70\nb,0,4,55\n");
  CsvImportOptions back;
  back.id_column = "id";
  back.covariate_columns = {"wt"};
  check_same(no_controls, import_csv(out, back));
}

BOOST_AUTO_TEST_CASE(pk_generator_follows_the_bateman_solution) {
  PkOptions o;
  o.subjects = 9;
  o.doses = 3;
  o.observations = 12;
  o.t_end = 36;
  o.noise = 0;
  std::vector<PkSubject> truth;
  const Dataset d = generate_pk(o, &truth);
  BOOST_REQUIRE_EQUAL(d.size(), 9u);
  BOOST_CHECK(d.compartment_names() == (std::vector<std::string>{"depot", "central"}));
  BOOST_CHECK(pk_truth(d).size() == 9u);
  for (std::size_t i = 0; i < d.size(); ++i) {
    const Series s = d.series(i);
    BOOST_CHECK_EQUAL(s.events.size(), 3u);
    BOOST_CHECK_EQUAL(s.covariates[0], truth[i].weight);
    BOOST_CHECK_EQUAL(pk_truth(d)[i].ka, truth[i].ka);
    // Noise-free values are the closed form; and the closed form solves the ODE system
    // A' = -ka A (depot), C' = ka A / V - ke C between doses: check by central differences.
    for (Eigen::Index k = 0; k < s.times.size(); ++k) {
      const double t = s.times[k], h = 1e-5;
      const double c = bateman_concentration(t, s.events, truth[i].ka, truth[i].ke, truth[i].V);
      BOOST_CHECK_EQUAL(s.values(k, 0), c);
      bool near_dose = false;
      for (const EventRecord& e : s.events) near_dose = near_dose || std::abs(e.time - t) < 2 * h;
      if (near_dose) continue;
      const double dc = (bateman_concentration(t + h, s.events, truth[i].ka, truth[i].ke, truth[i].V) -
                         bateman_concentration(t - h, s.events, truth[i].ka, truth[i].ke, truth[i].V)) / (2 * h);
      const double rhs = truth[i].ka * bateman_depot(t, s.events, truth[i].ka) / truth[i].V - truth[i].ke * c;
      BOOST_CHECK_SMALL(dc - rhs, 1e-7 * (1 + std::abs(rhs)));
    }
  }
  // The ka = ke limit is continuous with the general formula.
  const std::vector<EventRecord> dose{EventRecord{0, 0, 100, 0, Evid::Dose}};
  // (Just below and above the switch at |ka - ke| = 1e-6 ka: the two differ by the sensitivity to
  // ke, 3 h x 2e-7 relative, not by the formula.)
  BOOST_CHECK_CLOSE(bateman_concentration(3, dose, 0.2, 0.2 + 1e-7, 10),
                    bateman_concentration(3, dose, 0.2, 0.2 + 3e-7, 10), 1e-4);
  // Cohorts of 0.5x, 1x, 2x the dose; weights vary; the allometric typical values.
  BOOST_CHECK_EQUAL(d.series(0).events[0].amount, 50.0);
  BOOST_CHECK_EQUAL(d.series(2).events[0].amount, 200.0);
  const PkTypical heavy = pk_typical(o, 140);
  BOOST_CHECK_CLOSE(heavy.V, 2 * o.V, 1e-12);
  BOOST_CHECK_CLOSE(heavy.ke * heavy.V, std::pow(2.0, 0.75) * o.ke * o.V, 1e-12);  // CL ~ WT^0.75
  // Same seed, same data; subject i does not depend on how many subjects there are.
  o.subjects = 4;
  const Dataset fewer = generate_pk(o);
  BOOST_CHECK(fewer.series(3).values == d.series(3).values);
  o.noise = 0.5;
  BOOST_CHECK_THROW(generate_pk(o), OptionsError);
}

BOOST_AUTO_TEST_CASE(records_become_the_solvers_events) {
  const Dataset d = everything();
  // Compartments depot, central, effect site -> state components 2, 0, 1 of a 3-state model;
  // doses into the depot scaled by 0.01 (mg -> the model's units).
  TrajectoryOptions o;
  o.compartment_state = {2, 0, 1};
  o.dose_scale = (Vector(3) << 0.01, 1.0, 1.0).finished();
  const Trajectory a = d.trajectory(3, 3, o);
  BOOST_CHECK(a.validate(3).empty());
  BOOST_CHECK_EQUAL(a.t0, 0.0);
  BOOST_REQUIRE_EQUAL(a.events.size(), 5u);  // dose, infusion, reset + dose, dose
  BOOST_CHECK(a.events[0].kind == EventKind::Bolus);
  BOOST_CHECK_EQUAL(a.events[0].compartment, 2);
  BOOST_CHECK_EQUAL(a.events[0].amount, 0.01 * 25.0);
  BOOST_CHECK(a.events[1].kind == EventKind::Infusion);
  BOOST_CHECK_EQUAL(a.events[1].compartment, 0);
  BOOST_CHECK_EQUAL(a.events[1].duration, 2.0);  // 5 at rate 2.5
  BOOST_CHECK(a.events[2].kind == EventKind::Reset);
  BOOST_CHECK(a.events[3].kind == EventKind::Bolus);
  BOOST_CHECK_EQUAL(a.events[3].time, 6.0);
  BOOST_CHECK_EQUAL(a.events[3].compartment, 1);
  BOOST_CHECK(a.controls.times == d.series(3).control_times);
  BOOST_CHECK(a.controls.interpolation == ControlInterpolation::PiecewiseConstant);
  BOOST_CHECK(a.covariates == d.series(3).covariates);
  // t0 before the first observation is kept when the series has events (series 1: t0 = -0.5).
  BOOST_CHECK_EQUAL(d.trajectory(1, 3, o).t0, -0.5);
  // A compartment mapped outside the state is named.
  o.compartment_state = {2, 0, 3};
  expect_error([&] { d.trajectory(3, 3, o); }, {"series 's3'", "compartment 'effect site' enters state component 3",
                                                 "the model's state has 3 components"});
  // Normalised data: a dose into an observed channel is divided by its scale; that channel must
  // be normalised by scale only (mean 0), which compute_normalization gives on request.
  Dataset n = everything();
  o.compartment_state = {2, 0, 1};
  n.normalize(n.compute_normalization({0, 1, 2, 3}));
  expect_error([&] { n.trajectory(0, 3, o); }, {"compartment 'central' doses the channel 'conc'", "scale only"});
  Dataset m = everything();
  const Normalization sn = m.compute_normalization({0, 1, 2, 3}, {true, false});
  BOOST_CHECK_EQUAL(sn.mean[0], 0.0);
  BOOST_CHECK(sn.mean[1] != 0.0);
  m.normalize(sn);
  const Trajectory b = m.trajectory(0, 3, o);
  BOOST_CHECK_EQUAL(b.events[1].amount, 5.0 / sn.std[0]);
  BOOST_CHECK_EQUAL(b.events[0].amount, 0.01 * 100.0);  // the depot is not a channel: unscaled
}
