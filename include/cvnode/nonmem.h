// The pharmacometric event layout used by NONMEM, Monolix, nlmixr2 and Pumas, read into and
// written from a Dataset: one CSV row per record, ID, TIME, DV, AMT, EVID, CMT, MDV and, where
// present, RATE, ADDL, II, SS, DVID, plus covariate and control columns.
//
//     ID,TIME,DV,AMT,EVID,CMT,MDV,WT
//     1,0,,100,1,1,1,72.5        <- EVID 1: 100 units into compartment 1 (the depot)
//     1,0.5,1.84,,0,2,0,72.5     <- EVID 0: an observation
//     1,1,.,,0,2,0,72.5          <- DV empty or '.': missing
//
// Observations (EVID 0) become observation rows (MDV 1 or an empty DV: masked); doses (EVID 1),
// resets (EVID 3) and reset-and-dose records (EVID 4) become the series' events, CMT (1-based)
// naming the compartment; EVID 2 records carry only control values. Covariate columns must be
// constant per subject; control columns give the control knots where a cell is not empty.
// Every column must be used: a column that is none of these is refused with its name.
#pragma once

#include <string>
#include <vector>

#include "cvnode/dataset.h"

namespace cvnode {

struct NonmemImportOptions {
  // The standard columns are found by these names, ignoring case (nlmixr2 and Pumas write them
  // in lower case). ID, TIME and DV (or value_columns) are required; the others are optional.
  std::string id = "ID", time = "TIME", dv = "DV", amt = "AMT", evid = "EVID", cmt = "CMT", mdv = "MDV",
              rate = "RATE", addl = "ADDL", ii = "II", ss = "SS";
  // Several observed channels in the long layout: the DVID-like column whose values (numbers)
  // select the channel of each observation row; channels in increasing order of the value.
  std::string dvid;
  // Several observed channels in the wide layout (Pumas): one column per channel, instead of DV.
  std::vector<std::string> value_columns;
  // Channel names: one for DV (default "DV"), or one per distinct DVID value (default DV_<value>).
  std::vector<std::string> channel_names;
  std::vector<std::string> units;              // one per channel, or empty
  std::vector<std::string> covariate_columns;  // static per subject
  std::vector<std::string> control_columns;    // time-varying inputs u(t)
  std::string control_interpolation = "piecewise_constant";  // or "linear"
  std::vector<std::string> ignore_columns;     // read past (e.g. a comment column)
  // Names of compartments 1, 2, ... (CMT); empty: "cmt1" ... up to the largest CMT of a dose.
  // A CMT beyond the names is an error.
  std::vector<std::string> compartment_names;
};

struct NonmemImport {
  Dataset data;
  // What the import did that a user should know (ignored records, expanded ADDL doses, ...).
  std::vector<std::string> notes;
};

// Throws DataError "FILE:LINE: column 'C': ..." naming the value for a bad record (unknown EVID,
// negative amount, CMT beyond the compartments, a non-constant covariate, RATE -1/-2, SS != 0,
// a dose after the subject's last observation ...), "FILE: ..." for unknown or missing columns.
NonmemImport import_nonmem_csv(const std::string& path, const NonmemImportOptions& options);

// Writes the dataset in this layout (atomically): ID, TIME, then DV (one channel) or one column
// per channel, AMT, EVID, CMT, MDV, RATE (when a series has an infusion), the covariates and the
// controls; numbers in their shortest exact form, so that importing the file with the options
// export_import_options() gives back the same series, events, covariates and controls. At one
// time an observation row comes before the events (observations are taken before a dose). Initial
// states have no column and are left out (a note says so). Returns notes like the import.
std::vector<std::string> export_nonmem_csv(const Dataset& data, const std::string& path);

// The import options that read export_nonmem_csv's file of `data` back.
NonmemImportOptions export_import_options(const Dataset& data);
// The same as `cvnode data import-csv` arguments (after the file name), for messages.
std::string import_command_arguments(const NonmemImportOptions& options);

}  // namespace cvnode
