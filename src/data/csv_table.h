// The CSV record reader shared by every CSV import (rows, wide and the pharmacometric event
// layout): a header and records of text fields, each with its line number for messages.
// RFC 4180 (quoted fields may hold commas, quotes and line breaks); LF, CRLF and CR line endings,
// a UTF-8 byte-order mark and blank lines are accepted; a trailing comma in the header is no
// column.
#pragma once

#include <cstddef>
#include <string>
#include <vector>

namespace cvnode::detail {

struct CsvRecord {
  long line = 0;                    // 1-based line number where the record starts
  std::vector<std::string> fields;  // as many as the header has (checked)
};

struct CsvTable {
  std::string path;
  std::vector<std::string> header;
  std::vector<CsvRecord> records;

  // Index of a header column, or throws DataError "PATH: ROLE column 'NAME' not in the header (..)".
  std::size_t column(const std::string& name, const char* role) const;
  // Index of a header column, or header.size() when absent (an optional column).
  std::size_t find(const std::string& name) const;
};

// Throws DataError "PATH: ..." (no header, cannot open) or "PATH:LINE: ..." (unterminated quote, a
// record with another field count than the header).
CsvTable read_csv_table(const std::string& path);

// A cell as messages quote it: whole up to 40 characters, else its start and its length.
std::string csv_cell_text(const std::string& cell);
// Whether a cell means "missing": empty, NA, NaN, nan, N/A.
bool csv_missing(const std::string& cell);
// Parses the whole cell as a double (leading '+' allowed; below the smallest double, e.g.
// 1e-400, it is the nearest double); false if it is not a finite number.
bool csv_number(const std::string& cell, double* out);

}  // namespace cvnode::detail
