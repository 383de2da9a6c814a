#include "cvnode/csv.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <fstream>
#include <limits>
#include <map>
#include <sstream>
#include <unordered_map>

#include "cvnode/errors.h"
#include "data/atomic_file.h"
#include "data/csv_table.h"
#include "data/series_inputs.h"

namespace cvnode {

namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

std::string trim(const std::string& s) {
  const auto a = s.find_first_not_of(" \t"), b = s.find_last_not_of(" \t");
  return a == std::string::npos ? std::string() : s.substr(a, b - a + 1);
}

std::string exact(double v) {
  char buf[64];
  const auto r = std::to_chars(buf, buf + sizeof buf, v);
  return std::string(buf, r.ptr);
}

std::string quote(const std::string& s) {
  if (s.find_first_of(",\"\n\r") == std::string::npos && trim(s) == s) return s;
  std::string out = "\"";
  for (char c : s) out += c == '"' ? std::string("\"\"") : std::string(1, c);
  return out + "\"";
}

struct Row {
  long line;
  double time;
  std::vector<double> values;  // NaN = missing
  std::vector<double> covariates, controls;  // NaN = empty cell
};

// The cells of one column as numbers (NaN where missing), or a DataError naming line and column.
double cell_number(const std::string& path, long line, const std::string& column, const std::string& s) {
  double v = kNaN;
  if (!detail::csv_missing(s) && (!detail::csv_number(s, &v) || !std::isfinite(v)))
    throw DataError(path + ":" + std::to_string(line) + ": column '" + column + "': value '" + detail::csv_cell_text(s) +
                    "' is not a finite number (leave the cell empty if missing)");
  return v;
}

}  // namespace

Dataset import_csv(const std::string& path, const CsvImportOptions& opt) {
  const detail::CsvTable table = detail::read_csv_table(path);
  const auto& header = table.header;
  auto at = [&](long line, const std::string& what) { return DataError(path + ":" + std::to_string(line) + ": " + what); };
  const std::size_t tcol = table.column(opt.time_column, "time");
  const bool has_id = !opt.id_column.empty();
  if (has_id && opt.wide) throw DataError(path + ": the wide format has no id column (one column per series)");
  const std::size_t icol = has_id ? table.column(opt.id_column, "id") : header.size();
  if (opt.wide && !(opt.covariate_columns.empty() && opt.control_columns.empty()))
    throw DataError(path + ": the wide format has no covariates or controls (one column per series)");
  std::vector<std::size_t> kcols, ucols;
  for (const auto& n : opt.covariate_columns) kcols.push_back(table.column(n, "covariate"));
  for (const auto& n : opt.control_columns) ucols.push_back(table.column(n, "control"));
  std::vector<std::string> names = opt.value_columns;
  if (names.empty())
    for (std::size_t c = 0; c < header.size(); ++c)
      if (c != tcol && c != icol && std::find(kcols.begin(), kcols.end(), c) == kcols.end() &&
          std::find(ucols.begin(), ucols.end(), c) == ucols.end())
        names.push_back(header[c]);
  if (names.empty()) throw DataError(path + ": no value columns");
  std::vector<std::size_t> vcols;
  for (const auto& n : names) {
    vcols.push_back(table.column(n, "value"));
    if (std::find(kcols.begin(), kcols.end(), vcols.back()) != kcols.end() ||
        std::find(ucols.begin(), ucols.end(), vcols.back()) != ucols.end())
      throw DataError(path + ": column '" + n + "' is given as a value column and as a covariate or control");
  }

  // Rows grouped by series, in order of first appearance.
  std::vector<std::string> order;
  std::unordered_map<std::string, std::vector<Row>> rows;
  for (const detail::CsvRecord& rec : table.records) {
    const long lineno = rec.line;
    const std::vector<std::string>& fields = rec.fields;
    Row r;
    r.line = lineno;
    if (!detail::csv_number(fields[tcol], &r.time) || !std::isfinite(r.time))
      throw at(lineno, "column '" + opt.time_column + "': time '" + detail::csv_cell_text(fields[tcol]) +
                           "' is not a finite number");
    for (std::size_t c = 0; c < vcols.size(); ++c) r.values.push_back(cell_number(path, lineno, names[c], fields[vcols[c]]));
    for (std::size_t c = 0; c < kcols.size(); ++c)
      r.covariates.push_back(cell_number(path, lineno, opt.covariate_columns[c], fields[kcols[c]]));
    for (std::size_t c = 0; c < ucols.size(); ++c)
      r.controls.push_back(cell_number(path, lineno, opt.control_columns[c], fields[ucols[c]]));
    const std::string id = has_id ? fields[icol] : opt.single_series_id;
    if (has_id && id.empty()) throw at(lineno, "column '" + opt.id_column + "': empty series id");
    auto [it, fresh] = rows.try_emplace(id);
    if (fresh) order.push_back(id);
    it->second.push_back(std::move(r));
  }
  if (order.empty()) throw DataError(path + ": no data rows after the header");

  std::vector<std::string> channel_names = opt.wide ? std::vector<std::string>{opt.channel_name} : names;
  std::vector<std::string> units = opt.units;
  if (!units.empty() && units.size() != channel_names.size())
    throw DataError(path + ": " + std::to_string(units.size()) + " units given for " +
                    std::to_string(channel_names.size()) + " channels");
  Dataset d(channel_names, units);
  if (!opt.covariate_columns.empty()) d.set_covariate_names(opt.covariate_columns);
  if (!opt.control_columns.empty()) d.set_control_names(opt.control_columns);
  d.set_provenance("{\"imported_from\": \"" + path + "\", \"format\": \"" + (opt.wide ? "wide" : "rows") + "\"}");

  auto build = [&](const std::string& id, std::vector<Row>& rs, int column_index) {
    std::stable_sort(rs.begin(), rs.end(), [](const Row& a, const Row& b) { return a.time < b.time; });
    const int C = column_index < 0 ? static_cast<int>(names.size()) : 1;
    std::vector<const Row*> kept;
    for (const Row& r : rs)
      if (column_index < 0 || !std::isnan(r.values[column_index])) kept.push_back(&r);
    // A series without a single observed value is refused in both layouts (the wide one has no
    // rows left for it, the rows one would keep its times with nothing to fit).
    const bool observed = std::any_of(kept.begin(), kept.end(), [&](const Row* r) {
      return std::any_of(r->values.begin(), r->values.end(), [](double v) { return !std::isnan(v); });
    });
    if (!observed) throw DataError(path + ": series '" + id + "': no observed value (empty series)");
    Series s;
    s.id = id;
    s.times.resize(static_cast<Eigen::Index>(kept.size()));
    s.values.resize(static_cast<Eigen::Index>(kept.size()), C);
    s.mask.resize(static_cast<Eigen::Index>(kept.size()), C);
    for (std::size_t k = 0; k < kept.size(); ++k) {
      if (k > 0 && kept[k]->time == kept[k - 1]->time)
        throw at(kept[k]->line, "series '" + id + "': time " + exact(kept[k]->time) + " repeats line " +
                                    std::to_string(kept[k - 1]->line));
      s.times[k] = kept[k]->time;
      for (int c = 0; c < C; ++c) {
        const double v = kept[k]->values[column_index < 0 ? c : column_index];
        s.mask(k, c) = !std::isnan(v);
        s.values(k, c) = std::isnan(v) ? 0.0 : v;
      }
    }
    s.t0 = s.times[0];
    std::vector<detail::InputCells> cells;
    for (const Row* r : kept) cells.push_back({r->line, r->time, r->covariates, r->controls});
    detail::fill_inputs(cells, opt.covariate_columns, opt.control_columns, path, "series '" + id + "'", s);
    try {
      d.add(s);
    } catch (const DataError& e) {
      throw DataError(path + ": " + e.what());
    }
  };
  if (opt.wide) {
    std::vector<Row>& rs = rows.begin()->second;
    for (std::size_t c = 0; c < names.size(); ++c) build(names[c], rs, static_cast<int>(c));
  } else {
    for (const auto& id : order) build(id, rows[id], -1);
  }
  return d;
}

void export_csv(const Dataset& data, const std::string& path) {
  if (data.control_count() > 0 || data.has_events())
    throw DataError(path + ": the dataset has " + (data.has_events() ? std::string("events") : std::string("controls")) +
                    ", which the rows layout cannot hold: export it in the event layout (--format nonmem)");
  // A CSV has no room for a seal: it is committed atomically but unsealed.
  io::AtomicOutput out(path);
  std::ostream& f = out.stream();
  f << "id,time";
  for (const auto& n : data.channel_names()) f << ',' << quote(n);
  for (const auto& n : data.covariate_names()) f << ',' << quote(n);
  f << '\n';
  for (std::size_t i = 0; i < data.size(); ++i) {
    const Series s = data.series(i);
    const std::string id = quote(s.id);
    std::string cov;
    for (Eigen::Index k = 0; k < s.covariates.size(); ++k) cov += ',' + exact(s.covariates[k]);
    for (Eigen::Index k = 0; k < s.times.size(); ++k) {
      f << id << ',' << exact(s.times[k]);
      for (Eigen::Index c = 0; c < s.values.cols(); ++c) {
        f << ',';
        if (s.mask(k, c) != 0) f << exact(s.values(k, c));
      }
      f << cov << '\n';
    }
  }
  out.commit();
}

}  // namespace cvnode
