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

namespace cvnode {

namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

std::string trim(const std::string& s) {
  const auto a = s.find_first_not_of(" \t"), b = s.find_last_not_of(" \t");
  return a == std::string::npos ? std::string() : s.substr(a, b - a + 1);
}

// Splits one CSV record (RFC 4180 quotes: "a,b" and "" for a quote). Returns false on an
// unterminated quote.
bool split_fields(const std::string& line, std::vector<std::string>& out) {
  out.clear();
  std::string cur;
  bool quoted = false, was_quoted = false;
  for (std::size_t i = 0; i < line.size(); ++i) {
    const char ch = line[i];
    if (quoted) {
      if (ch == '"' && i + 1 < line.size() && line[i + 1] == '"') { cur += '"'; ++i; }
      else if (ch == '"') quoted = false;
      else cur += ch;
    } else if (ch == '"') {
      quoted = was_quoted = true;
    } else if (ch == ',') {
      out.push_back(was_quoted ? cur : trim(cur));
      cur.clear();
      was_quoted = false;
    } else {
      cur += ch;
    }
  }
  out.push_back(was_quoted ? cur : trim(cur));
  return !quoted;
}

bool is_missing(const std::string& s) { return s.empty() || s == "NA" || s == "NaN" || s == "nan" || s == "N/A"; }

// Parses the whole field as a finite double.
bool parse_number(const std::string& s, double* out) {
  if (s.empty()) return false;
  const char* begin = s.data();
  if (*begin == '+') ++begin;
  const auto r = std::from_chars(begin, s.data() + s.size(), *out);
  return r.ec == std::errc() && r.ptr == s.data() + s.size();
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
};

}  // namespace

Dataset import_csv(const std::string& path, const CsvImportOptions& opt) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw DataError(path + ": cannot open the CSV file");
  auto at = [&](long line, const std::string& what) { return DataError(path + ":" + std::to_string(line) + ": " + what); };

  std::string line;
  std::vector<std::string> header, fields;
  long lineno = 0;
  while (header.empty() && std::getline(in, line)) {
    ++lineno;
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (lineno == 1 && line.rfind("\xEF\xBB\xBF", 0) == 0) line.erase(0, 3);  // UTF-8 byte-order mark
    if (trim(line).empty()) continue;
    if (!split_fields(line, header)) throw at(lineno, "unterminated quote in the header");
  }
  if (header.empty()) throw DataError(path + ": empty CSV file (no header row)");
  auto column = [&](const std::string& name, const char* role) -> std::size_t {
    const auto it = std::find(header.begin(), header.end(), name);
    if (it == header.end()) {
      std::string have;
      for (const auto& h : header) have += (have.empty() ? "" : ", ") + h;
      throw DataError(path + ": " + role + " column '" + name + "' not in the header (" + have + ")");
    }
    return static_cast<std::size_t>(it - header.begin());
  };
  const std::size_t tcol = column(opt.time_column, "time");
  const bool has_id = !opt.id_column.empty();
  if (has_id && opt.wide) throw DataError(path + ": the wide format has no id column (one column per series)");
  const std::size_t icol = has_id ? column(opt.id_column, "id") : header.size();
  std::vector<std::string> names = opt.value_columns;
  if (names.empty())
    for (std::size_t c = 0; c < header.size(); ++c)
      if (c != tcol && c != icol) names.push_back(header[c]);
  if (names.empty()) throw DataError(path + ": no value columns");
  std::vector<std::size_t> vcols;
  for (const auto& n : names) vcols.push_back(column(n, "value"));

  // Rows grouped by series, in order of first appearance.
  std::vector<std::string> order;
  std::unordered_map<std::string, std::vector<Row>> rows;
  while (std::getline(in, line)) {
    ++lineno;
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (trim(line).empty()) continue;
    if (!split_fields(line, fields)) throw at(lineno, "unterminated quote");
    if (fields.size() != header.size())
      throw at(lineno, std::to_string(fields.size()) + " fields, the header has " + std::to_string(header.size()));
    Row r;
    r.line = lineno;
    if (!parse_number(fields[tcol], &r.time) || !std::isfinite(r.time))
      throw at(lineno, "column '" + opt.time_column + "': time '" + fields[tcol] + "' is not a finite number");
    for (std::size_t c = 0; c < vcols.size(); ++c) {
      const std::string& s = fields[vcols[c]];
      double v = kNaN;
      if (!is_missing(s) && (!parse_number(s, &v) || !std::isfinite(v)))
        throw at(lineno, "column '" + names[c] + "': value '" + s + "' is not a finite number (leave the cell empty if missing)");
      r.values.push_back(v);
    }
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
  d.set_provenance("{\"imported_from\": \"" + path + "\", \"format\": \"" + (opt.wide ? "wide" : "rows") + "\"}");

  auto build = [&](const std::string& id, std::vector<Row>& rs, int column_index) {
    std::stable_sort(rs.begin(), rs.end(), [](const Row& a, const Row& b) { return a.time < b.time; });
    const int C = column_index < 0 ? static_cast<int>(names.size()) : 1;
    std::vector<const Row*> kept;
    for (const Row& r : rs)
      if (column_index < 0 || !std::isnan(r.values[column_index])) kept.push_back(&r);
    if (kept.empty()) throw DataError(path + ": series '" + id + "': no observed value (empty series)");
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
    d.add(s);
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
  io::AtomicWrite out(path);
  {
    std::ofstream f(out.temp_path(), std::ios::binary);
    if (!f) throw DataError(path + ": cannot write (cannot create " + out.temp_path() + ")");
    // A CSV has no room for a seal: it is committed atomically but unsealed.
    f << "id,time";
    for (const auto& n : data.channel_names()) f << ',' << quote(n);
    f << '\n';
    for (std::size_t i = 0; i < data.size(); ++i) {
      const Series s = data.series(i);
      const std::string id = quote(s.id);
      for (Eigen::Index k = 0; k < s.times.size(); ++k) {
        f << id << ',' << exact(s.times[k]);
        for (Eigen::Index c = 0; c < s.values.cols(); ++c) {
          f << ',';
          if (s.mask(k, c) != 0) f << exact(s.values(k, c));
        }
        f << '\n';
      }
    }
    f.flush();
    if (!f) throw DataError(path + ": write failed (disk full?)");
  }
  out.commit_unsealed();
}

}  // namespace cvnode
