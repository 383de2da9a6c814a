// CSV import and export of datasets, for data that lives in spreadsheets and data frames.
//
// Rows format (the default): one row per series id and time, one column per channel:
//     id,time,prey,predator
//     a,0.5,1.2,0.8
//     a,1.0,,0.9        <- empty cell: missing (so are NA, NaN)
// Wide format: one row per time, each value column is one series with a single channel; a
// series keeps the rows where its cell is not empty.
#pragma once

#include <string>
#include <vector>

#include "cvnode/dataset.h"

namespace cvnode {

struct CsvImportOptions {
  // Column of the series id; empty means the file holds one series named `single_series_id`.
  std::string id_column;
  std::string time_column = "time";
  // Channel columns (rows format) or series columns (wide format); empty means every column
  // other than the id and time columns, in file order.
  std::vector<std::string> value_columns;
  std::vector<std::string> units;  // one per channel, or empty for none
  // Rows format: columns of static covariates (one value per series, repeated or on some rows)
  // and of control inputs (a knot at each row where the cell is not empty). Not value columns.
  std::vector<std::string> covariate_columns, control_columns;
  bool wide = false;
  std::string channel_name = "value";  // wide format: the name of the single channel
  std::string single_series_id = "series_0";
};

// Throws DataError "FILE:LINE: ..." for a row with the wrong number of fields, an unparsable or
// non-finite number, a duplicate time within a series; "FILE: ..." for unknown columns.
// Rows of a series may come in any order; they are sorted by time.
Dataset import_csv(const std::string& path, const CsvImportOptions& options);

// Rows format with an `id` and a `time` column, values printed exactly (shortest round-trip
// form), missing entries empty, then one column per covariate (repeated on every row). Written
// atomically. Initial states, controls and events have no place in this layout: a dataset with
// controls or events is refused (export it with export_nonmem_csv, include/cvnode/nonmem.h).
void export_csv(const Dataset& data, const std::string& path);

}  // namespace cvnode
