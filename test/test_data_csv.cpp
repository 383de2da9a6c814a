// CSV import and export: exact values both ways, rows and wide formats, ids, units.
// ctest: labels=unit,sanitize timeout=60
#define BOOST_TEST_MODULE data_csv
#include <boost/test/unit_test.hpp>

#include <unistd.h>

#include <cmath>
#include <fstream>
#include <iterator>

#include "cvnode/csv.h"
#include "cvnode/dataset.h"
#include "cvnode/errors.h"
#include "cvnode/generators.h"
#include "test_util.h"

using namespace cvnode;

namespace {

std::string temp_dir() {
  static const std::string dir = cvnode::test::make_temp_dir("data_csv");
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

}  // namespace

BOOST_AUTO_TEST_CASE(rows_format_import_then_export_gives_the_same_values) {
  // Unsorted rows, interleaved series, a quoted id with a comma, missing cells, CRLF endings.
  const std::string csv =
      "subject,t,temp,pulse,note\r\n"
      "b,2.5,36.6,,x\r\n"
      "a,0,37.25,80,y\r\n"
      "\"c,1\",1e-3,35,70,z\r\n"
      "a,1.5,NA,82,\r\n"
      "b,0.1,36.9,64,\r\n"
      "a,0.75,37.5,81,\r\n";
  CsvImportOptions o;
  o.id_column = "subject";
  o.time_column = "t";
  o.value_columns = {"temp", "pulse"};
  o.units = {"degC", "1/min"};
  const Dataset d = import_csv(write_text("in.csv", csv), o);
  BOOST_REQUIRE_EQUAL(d.size(), 3u);
  BOOST_CHECK_EQUAL(d.id(0), "b");
  BOOST_CHECK_EQUAL(d.id(2), "c,1");
  BOOST_CHECK(d.channel_units() == (std::vector<std::string>{"degC", "1/min"}));
  const Series a = d.series(1);
  BOOST_CHECK(a.times == (Vector(3) << 0, 0.75, 1.5).finished());
  BOOST_CHECK_EQUAL(a.values(0, 0), 37.25);
  BOOST_CHECK_EQUAL(a.mask(2, 0), 0.0);
  BOOST_CHECK_EQUAL(a.values(2, 1), 82.0);
  BOOST_CHECK_EQUAL(d.series(0).mask(1, 1), 0.0);  // b at 2.5: pulse empty
  BOOST_CHECK_EQUAL(d.series(2).times[0], 1e-3);

  const std::string out = temp_dir() + "/out.csv";
  export_csv(d, out);
  BOOST_CHECK_EQUAL(slurp(out),
                    "id,time,temp,pulse\n"
                    "b,0.1,36.9,64\n"
                    "b,2.5,36.6,\n"
                    "a,0,37.25,80\n"
                    "a,0.75,37.5,81\n"
                    "a,1.5,,82\n"
                    "\"c,1\",0.001,35,70\n");
  // And back: the same dataset.
  CsvImportOptions back;
  back.id_column = "id";
  back.units = o.units;
  const Dataset r = import_csv(out, back);
  BOOST_REQUIRE_EQUAL(r.size(), d.size());
  for (std::size_t i = 0; i < d.size(); ++i) {
    const Series x = d.series(i), y = r.series(i);
    BOOST_CHECK_EQUAL(x.id, y.id);
    BOOST_CHECK(x.times == y.times);
    BOOST_CHECK(x.mask == y.mask);
    for (Eigen::Index e = 0; e < x.values.size(); ++e)
      if (x.mask(e)) BOOST_CHECK_EQUAL(x.values(e), y.values(e));
  }
}

BOOST_AUTO_TEST_CASE(generated_data_survives_h5_csv_h5_bit_for_bit) {
  for (const auto& system : generator_systems()) {
    GeneratorOptions g;
    g.system = system;
    g.series = 6;
    g.observations = 12;
    g.missing = 0.15;
    const Dataset d = generate(g);
    const std::string csv = temp_dir() + "/" + system + ".csv";
    export_csv(d, csv);
    CsvImportOptions o;
    o.id_column = "id";
    const Dataset r = import_csv(csv, o);
    BOOST_REQUIRE_EQUAL(r.size(), d.size());
    BOOST_CHECK(r.channel_names() == d.channel_names());
    for (std::size_t i = 0; i < d.size(); ++i) {
      const Series x = d.series(i), y = r.series(i);
      BOOST_CHECK(x.times == y.times);  // shortest round-trip text: exact
      BOOST_CHECK(x.mask == y.mask);
      for (Eigen::Index e = 0; e < x.values.size(); ++e)
        if (x.mask(e)) BOOST_REQUIRE_EQUAL(x.values(e), y.values(e));
    }
    // Export of the re-import is byte-identical.
    const std::string again = temp_dir() + "/" + system + "_again.csv";
    export_csv(r, again);
    BOOST_CHECK(slurp(csv) == slurp(again));
  }
}

BOOST_AUTO_TEST_CASE(no_id_column_and_wide_format) {
  CsvImportOptions one;
  one.single_series_id = "run7";
  const Dataset d = import_csv(write_text("single.csv", "time,x,y\n0,1,2\n1,3,\n2,5,6\n"), one);
  BOOST_REQUIRE_EQUAL(d.size(), 1u);
  BOOST_CHECK_EQUAL(d.id(0), "run7");
  BOOST_CHECK(d.channel_names() == (std::vector<std::string>{"x", "y"}));
  BOOST_CHECK_EQUAL(d.series(0).values(2, 1), 6.0);
  BOOST_CHECK_EQUAL(d.series(0).mask(1, 1), 0.0);

  CsvImportOptions wide;
  wide.wide = true;
  wide.channel_name = "level";
  wide.units = {"m"};
  const Dataset w = import_csv(write_text("wide.csv", "time,north,south\n0,1.5,\n1,,2.5\n2,3.5,4.5\n"), wide);
  BOOST_REQUIRE_EQUAL(w.size(), 2u);
  BOOST_CHECK_EQUAL(w.id(1), "south");
  BOOST_CHECK(w.series(0).times == (Vector(2) << 0, 2).finished());
  BOOST_CHECK(w.series(1).times == (Vector(2) << 1, 2).finished());
  BOOST_CHECK_EQUAL(w.series(1).values(1, 0), 4.5);
  BOOST_CHECK_EQUAL(w.channel_names()[0], "level");
  BOOST_CHECK_EQUAL(w.channel_units()[0], "m");
}

// Issue 19 case 11: what spreadsheets and other tools write is read as RFC 4180 and common
// sense say, and what cannot be read is named without flooding the terminal.
BOOST_AUTO_TEST_CASE(csv_files_as_other_tools_write_them) {
  CsvImportOptions o;
  o.id_column = "id";
  // A trailing comma on every row (header included) is no column named ''.
  Dataset d = import_csv(write_text("trailing.csv", "id,time,x,\na,0,1,\na,1,2,\n"), o);
  BOOST_TEST(d.channels() == 1);
  BOOST_TEST(d.channel_names()[0] == "x");
  // ... also when only the header has it; an unnamed column elsewhere is refused.
  d = import_csv(write_text("trailing_header.csv", "id,time,x,\na,0,1\na,1,2\n"), o);
  BOOST_TEST(d.channels() == 1);
  const std::string unnamed = write_text("unnamed.csv", "id,,x\na,0,1\n");
  BOOST_CHECK_EXCEPTION(import_csv(unnamed, o), DataError, [&](const DataError& e) {
    return std::string(e.what()).find(unnamed + ":1: column 2 of the header has no name") == 0;
  });
  // A quoted field may hold a line break (and the line numbers after it stay right).
  const std::string multi = write_text("multiline.csv", "id,time,x\n\"first\nline\",0,1\n\"b\",1,2\nb,2,oops\n");
  d = import_csv(write_text("multiline_ok.csv", "id,time,x\n\"first\nline\",0,1\n\"b\",1,2\n"), o);
  BOOST_TEST(d.size() == 2u);
  BOOST_TEST(d.id(0) == "first\nline");
  BOOST_CHECK_EXCEPTION(import_csv(multi, o), DataError, [&](const DataError& e) {
    return std::string(e.what()).find(multi + ":5: column 'x': value 'oops'") == 0;
  });
  // Old Mac line endings (CR only).
  d = import_csv(write_text("cr.csv", "id,time,x\ra,0,1\ra,1,2\r"), o);
  BOOST_TEST(d.observations() == 2u);
  // A number below the smallest double is the nearest double (0); one beyond the largest is not finite.
  d = import_csv(write_text("tiny.csv", "id,time,x\na,0,1e-400\na,1,2\n"), o);
  BOOST_TEST(d.series(0).values(0, 0) == 0.0);
  BOOST_TEST(d.series(0).mask(0, 0) == 1.0);
  const std::string big = write_text("big.csv", "id,time,x\na,0,1e400\n");
  BOOST_CHECK_THROW(import_csv(big, o), DataError);
  // A huge cell is quoted by its start and its length, not echoed whole.
  const std::string cell(1 << 20, '7');
  const std::string huge = write_text("huge_cell.csv", "id,time,x\na,0,x" + cell + "\n");
  BOOST_CHECK_EXCEPTION(import_csv(huge, o), DataError, [&](const DataError& e) {
    const std::string m = e.what();
    return m.size() < 300 && m.find("(1048577 characters)") != std::string::npos;
  });
  // A directory is not "an empty CSV file".
  BOOST_CHECK_EXCEPTION(import_csv(temp_dir(), o), DataError, [&](const DataError& e) {
    return std::string(e.what()) == temp_dir() + ": is a directory, not a CSV file";
  });
}

// Issue 19 case 12: a series without a single observed value is refused by both layouts.
BOOST_AUTO_TEST_CASE(an_all_missing_series_is_refused_by_both_layouts) {
  CsvImportOptions rows;
  rows.id_column = "id";
  const std::string r = write_text("all_missing_rows.csv", "id,time,x,y\na,0,1,2\nb,0,,\nb,1,NA,\n");
  BOOST_CHECK_EXCEPTION(import_csv(r, rows), DataError, [&](const DataError& e) {
    return std::string(e.what()) == r + ": series 'b': no observed value (empty series)";
  });
  CsvImportOptions wide;
  wide.wide = true;
  const std::string w = write_text("all_missing_wide.csv", "time,a,b\n0,1,\n1,2,\n");
  BOOST_CHECK_EXCEPTION(import_csv(w, wide), DataError, [&](const DataError& e) {
    return std::string(e.what()) == w + ": series 'b': no observed value (empty series)";
  });
}
