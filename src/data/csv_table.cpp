#include "data/csv_table.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "cvnode/errors.h"

namespace cvnode::detail {

namespace {

std::string trim(const std::string& s) {
  const auto a = s.find_first_not_of(" \t"), b = s.find_last_not_of(" \t");
  return a == std::string::npos ? std::string() : s.substr(a, b - a + 1);
}

// RFC 4180 records of a whole file: fields separated by commas, records by LF, CRLF or a lone CR
// (old Mac files), a quoted field may hold commas, line breaks and "" for a quote. Unquoted fields
// are trimmed. Each record keeps the line it starts on; blank records are skipped.
class Records {
 public:
  Records(const std::string& text, const std::string& path) : s_(text), path_(path) {
    if (s_.rfind("\xEF\xBB\xBF", 0) == 0) pos_ = 3;  // UTF-8 byte-order mark
  }
  // The next non-blank record into `fields` (and its first line into `line`); false at the end.
  bool next(std::vector<std::string>& fields, long& line) {
    for (;;) {
      if (pos_ >= s_.size()) return false;
      fields.clear();
      line = line_;
      std::string cur;
      bool quoted = false, was_quoted = false, blank = true;
      for (;;) {
        if (pos_ >= s_.size()) {
          if (quoted) throw DataError(path_ + ":" + std::to_string(line) + ": unterminated quote");
          break;
        }
        const char ch = s_[pos_++];
        if (quoted) {
          if (ch == '"' && pos_ < s_.size() && s_[pos_] == '"') {
            cur += '"';
            ++pos_;
          } else if (ch == '"') {
            quoted = false;
          } else {
            if (ch == '\n' || (ch == '\r' && (pos_ >= s_.size() || s_[pos_] != '\n'))) ++line_;
            cur += ch;
          }
        } else if (ch == '"') {
          quoted = was_quoted = true;
          blank = false;
        } else if (ch == ',') {
          fields.push_back(was_quoted ? cur : trim(cur));
          cur.clear();
          was_quoted = false;
          blank = false;
        } else if (ch == '\n' || ch == '\r') {
          if (ch == '\r' && pos_ < s_.size() && s_[pos_] == '\n') ++pos_;
          ++line_;
          break;
        } else {
          if (ch != ' ' && ch != '\t') blank = false;
          cur += ch;
        }
      }
      fields.push_back(was_quoted ? cur : trim(cur));
      if (!blank) return true;
    }
  }

 private:
  const std::string& s_;
  const std::string& path_;
  std::size_t pos_ = 0;
  long line_ = 1;
};

}  // namespace

std::string csv_cell_text(const std::string& cell) {
  if (cell.size() <= 40) return cell;
  return cell.substr(0, 32) + "... (" + std::to_string(cell.size()) + " characters)";
}

bool csv_missing(const std::string& s) { return s.empty() || s == "NA" || s == "NaN" || s == "nan" || s == "N/A"; }

bool csv_number(const std::string& s, double* out) {
  if (s.empty()) return false;
  const char* begin = s.data();
  if (*begin == '+') ++begin;
  const auto r = std::from_chars(begin, s.data() + s.size(), *out);
  if (r.ptr != s.data() + s.size()) return false;
  if (r.ec == std::errc::result_out_of_range) {
    // Below the smallest double (1e-400): the nearest double, 0 or subnormal, as strtod and
    // every spreadsheet read it. Beyond the largest (1e400) stays refused: it is not finite.
    const double v = std::strtod(std::string(begin, s.data() + s.size()).c_str(), nullptr);
    if (!std::isfinite(v)) return false;
    *out = v;
    return true;
  }
  return r.ec == std::errc();
}

std::size_t CsvTable::find(const std::string& name) const {
  return static_cast<std::size_t>(std::find(header.begin(), header.end(), name) - header.begin());
}

std::size_t CsvTable::column(const std::string& name, const char* role) const {
  const std::size_t c = find(name);
  if (c == header.size()) {
    std::string have;
    for (const auto& h : header) have += (have.empty() ? "" : ", ") + h;
    throw DataError(path + ": " + role + " column '" + csv_cell_text(name) + "' not in the header (" +
                    csv_cell_text(have) + ")");
  }
  return c;
}

CsvTable read_csv_table(const std::string& path) {
  std::error_code ec;
  if (std::filesystem::is_directory(path, ec)) throw DataError(path + ": is a directory, not a CSV file");
  std::ifstream in(path, std::ios::binary);
  if (!in) throw DataError(path + ": cannot open the CSV file");
  std::stringstream buffer;
  buffer << in.rdbuf();
  if (in.bad()) throw DataError(path + ": cannot read the CSV file");
  const std::string text = buffer.str();
  auto at = [&](long line, const std::string& what) { return DataError(path + ":" + std::to_string(line) + ": " + what); };
  CsvTable t;
  t.path = path;
  Records records(text, path);
  long header_line = 0;
  if (!records.next(t.header, header_line)) throw DataError(path + ": empty CSV file (no header row)");
  // A trailing comma in the header (spreadsheet exports often end every row with one) is no
  // column; any other unnamed column is refused rather than imported as a channel named ''.
  const bool trailing = t.header.size() > 1 && t.header.back().empty();
  if (trailing) t.header.pop_back();
  for (std::size_t c = 0; c < t.header.size(); ++c)
    if (t.header[c].empty()) throw at(header_line, "column " + std::to_string(c + 1) + " of the header has no name");
  CsvRecord r;
  while (records.next(r.fields, r.line)) {
    if (trailing && r.fields.size() == t.header.size() + 1) {
      if (!r.fields.back().empty())
        throw at(r.line, "a value after the last column (the header ends with an empty column)");
      r.fields.pop_back();
    }
    if (r.fields.size() != t.header.size())
      throw at(r.line, std::to_string(r.fields.size()) + " fields, the header has " + std::to_string(t.header.size()));
    t.records.push_back(r);
  }
  return t;
}

}  // namespace cvnode::detail
