#include "data/csv_table.h"

#include <algorithm>
#include <charconv>
#include <fstream>

#include "cvnode/errors.h"

namespace cvnode::detail {

namespace {

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

}  // namespace

bool csv_missing(const std::string& s) { return s.empty() || s == "NA" || s == "NaN" || s == "nan" || s == "N/A"; }

bool csv_number(const std::string& s, double* out) {
  if (s.empty()) return false;
  const char* begin = s.data();
  if (*begin == '+') ++begin;
  const auto r = std::from_chars(begin, s.data() + s.size(), *out);
  return r.ec == std::errc() && r.ptr == s.data() + s.size();
}

std::size_t CsvTable::find(const std::string& name) const {
  return static_cast<std::size_t>(std::find(header.begin(), header.end(), name) - header.begin());
}

std::size_t CsvTable::column(const std::string& name, const char* role) const {
  const std::size_t c = find(name);
  if (c == header.size()) {
    std::string have;
    for (const auto& h : header) have += (have.empty() ? "" : ", ") + h;
    throw DataError(path + ": " + role + " column '" + name + "' not in the header (" + have + ")");
  }
  return c;
}

CsvTable read_csv_table(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw DataError(path + ": cannot open the CSV file");
  auto at = [&](long line, const std::string& what) { return DataError(path + ":" + std::to_string(line) + ": " + what); };
  CsvTable t;
  t.path = path;
  std::string line;
  long lineno = 0;
  while (t.header.empty() && std::getline(in, line)) {
    ++lineno;
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (lineno == 1 && line.rfind("\xEF\xBB\xBF", 0) == 0) line.erase(0, 3);  // UTF-8 byte-order mark
    if (trim(line).empty()) continue;
    if (!split_fields(line, t.header)) throw at(lineno, "unterminated quote in the header");
  }
  if (t.header.empty()) throw DataError(path + ": empty CSV file (no header row)");
  CsvRecord r;
  while (std::getline(in, line)) {
    ++lineno;
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (trim(line).empty()) continue;
    r.line = lineno;
    if (!split_fields(line, r.fields)) throw at(lineno, "unterminated quote");
    if (r.fields.size() != t.header.size())
      throw at(lineno, std::to_string(r.fields.size()) + " fields, the header has " + std::to_string(t.header.size()));
    t.records.push_back(r);
  }
  return t;
}

}  // namespace cvnode::detail
