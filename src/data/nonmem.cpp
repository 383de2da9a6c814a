// The pharmacometric event layout (include/cvnode/nonmem.h) on top of the shared CSV reader.
#include "cvnode/nonmem.h"

#include <algorithm>
#include <cctype>
#include <charconv>
#include <cmath>
#include <fstream>
#include <limits>
#include <map>
#include <set>
#include <unordered_map>

#include <nlohmann/json.hpp>

#include "cvnode/errors.h"
#include "data/atomic_file.h"
#include "data/csv_table.h"
#include "data/series_inputs.h"

namespace cvnode {

namespace {

constexpr double kNoValue = std::numeric_limits<double>::quiet_NaN();

std::string lower(std::string s) {
  for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

std::string exact(double v) {
  char buf[64];
  const auto r = std::to_chars(buf, buf + sizeof buf, v);
  return std::string(buf, r.ptr);
}

std::string joined(const std::vector<std::string>& v, const char* sep = ", ") {
  std::string s;
  for (const auto& x : v) s += (s.empty() ? "" : sep) + x;
  return s;
}

// NONMEM writes '.' for a null cell.
bool missing(const std::string& s) { return s == "." || detail::csv_missing(s); }

// The columns of the layout, found by name ignoring case, with each header column used once.
class Columns {
 public:
  explicit Columns(const detail::CsvTable& t) : t_(t), used_(t.header.size(), false) {}
  // Index of `name` (exact match first, else the one column equal ignoring case), or npos.
  std::size_t optional(const std::string& name) {
    if (name.empty()) return npos;
    std::size_t c = t_.find(name);
    if (c == t_.header.size()) {
      for (std::size_t i = 0; i < t_.header.size(); ++i)
        if (lower(t_.header[i]) == lower(name)) {
          if (c != t_.header.size())
            throw DataError(t_.path + ": columns '" + t_.header[c] + "' and '" + t_.header[i] + "' both match '" +
                            name + "' (ignoring case): rename one");
          c = i;
        }
    }
    if (c == t_.header.size()) return npos;
    if (used_[c])
      throw DataError(t_.path + ": column '" + t_.header[c] + "' is given two roles (as '" + name + "' and before)");
    used_[c] = true;
    return c;
  }
  std::size_t required(const std::string& name, const char* role) {
    const std::size_t c = optional(name);
    if (c == npos) {
      t_.column(name, role);  // throws with the header listed
    }
    return c;
  }
  // Header columns no role took.
  std::vector<std::string> unused() const {
    std::vector<std::string> out;
    for (std::size_t i = 0; i < used_.size(); ++i)
      if (!used_[i]) out.push_back(t_.header[i].empty() ? "(column " + std::to_string(i + 1) + ", no name)" : t_.header[i]);
    return out;
  }
  static constexpr std::size_t npos = static_cast<std::size_t>(-1);

 private:
  const detail::CsvTable& t_;
  std::vector<bool> used_;
};

// One parsed record.
struct Record {
  long line = 0;
  std::size_t order = 0;  // position in the file
  double time = 0;
  int evid = 0;
  bool mdv = false;
  double amt = 0, rate = 0, ii = 0;
  double dvid = 0;  // observation records in the long layout: the channel's DVID value
  long cmt = 1, addl = 0;
  std::vector<double> values;    // per channel, NaN = not in this record
  std::vector<double> covariates;  // NaN = empty cell
  std::vector<double> controls;    // NaN = empty cell
};

}  // namespace

NonmemImport import_nonmem_csv(const std::string& path, const NonmemImportOptions& opt) {
  const detail::CsvTable table = detail::read_csv_table(path);
  auto at = [&](long line, const std::string& what) {
    return DataError(path + ":" + std::to_string(line) + ": " + what);
  };
  Columns cols(table);
  constexpr auto npos = Columns::npos;
  const std::size_t c_id = cols.required(opt.id, "id");
  const std::size_t c_time = cols.required(opt.time, "time");
  std::vector<std::size_t> c_values;
  std::size_t c_dv = npos, c_dvid = npos;
  if (!opt.value_columns.empty()) {
    if (!opt.dvid.empty()) throw DataError(path + ": give either value columns (wide layout) or a DVID column, not both");
    for (const auto& v : opt.value_columns) c_values.push_back(cols.required(v, "value"));
  } else {
    c_dv = cols.required(opt.dv, "DV");
    if (!opt.dvid.empty()) c_dvid = cols.required(opt.dvid, "DVID");
  }
  const std::size_t c_evid = cols.optional(opt.evid), c_mdv = cols.optional(opt.mdv), c_amt = cols.optional(opt.amt);
  // With a DVID column that is the CMT column, CMT selects the observed channel and is read once.
  const bool dvid_is_cmt = c_dvid != npos && lower(table.header[c_dvid]) == lower(opt.cmt);
  const std::size_t c_cmt = dvid_is_cmt ? c_dvid : cols.optional(opt.cmt);
  const std::size_t c_rate = cols.optional(opt.rate), c_addl = cols.optional(opt.addl), c_ii = cols.optional(opt.ii),
                    c_ss = cols.optional(opt.ss);
  std::vector<std::size_t> c_cov, c_ctrl;
  for (const auto& n : opt.covariate_columns) c_cov.push_back(cols.required(n, "covariate"));
  for (const auto& n : opt.control_columns) c_ctrl.push_back(cols.required(n, "control"));
  for (const auto& n : opt.ignore_columns) cols.required(n, "ignored");
  if (const auto rest = cols.unused(); !rest.empty())
    throw DataError(path + ": column" + (rest.size() > 1 ? "s " : " ") + joined(rest) +
                    (rest.size() > 1 ? " are" : " is") +
                    " not used: name each as --covariates (static per subject), --controls (time-varying "
                    "inputs), --values (observed channels) or --ignore");
  if (opt.control_interpolation != "piecewise_constant" && opt.control_interpolation != "linear")
    throw DataError(path + ": control interpolation '" + opt.control_interpolation +
                    "' (expected piecewise_constant or linear)");

  auto number = [&](const detail::CsvRecord& r, std::size_t c, const char* what) {
    double v = 0;
    if (!detail::csv_number(r.fields[c], &v) || !std::isfinite(v))
      throw at(r.line, "column '" + table.header[c] + "': " + what + " '" + detail::csv_cell_text(r.fields[c]) + "' is not a finite number");
    return v;
  };
  auto optional_number = [&](const detail::CsvRecord& r, std::size_t c, const char* what, double fallback) {
    return c == npos || missing(r.fields[c]) ? fallback : number(r, c, what);
  };
  auto integer = [&](const detail::CsvRecord& r, std::size_t c, const char* what, long fallback) {
    const double v = optional_number(r, c, what, static_cast<double>(fallback));
    if (v != std::floor(v) || std::abs(v) > 1e9)
      throw at(r.line, "column '" + table.header[c] + "': " + what + " '" + detail::csv_cell_text(r.fields[c]) + "' is not an integer");
    return static_cast<long>(v);
  };

  // Channels: the value columns, the DVID values, or the one DV.
  std::vector<double> dvid_values;  // sorted distinct DVID values of observation records
  // First pass: records, grouped by subject in order of first appearance.
  std::vector<std::string> subjects;
  std::unordered_map<std::string, std::vector<Record>> by_subject;
  std::size_t ignored_other = 0;
  for (std::size_t i = 0; i < table.records.size(); ++i) {
    const detail::CsvRecord& r = table.records[i];
    Record rec;
    rec.line = r.line;
    rec.order = i;
    const std::string id = r.fields[c_id];
    if (missing(id)) throw at(r.line, "column '" + table.header[c_id] + "': empty subject id");
    rec.time = number(r, c_time, "time");
    rec.amt = optional_number(r, c_amt, "amount", 0.0);
    const long mdv = integer(r, c_mdv, "MDV", 0);
    if (mdv != 0 && mdv != 1)
      throw at(r.line, "column '" + table.header[c_mdv] + "': MDV '" + r.fields[c_mdv] + "' must be 0 or 1");
    rec.mdv = mdv == 1;
    if (c_evid != npos && !missing(r.fields[c_evid])) {
      const long e = integer(r, c_evid, "EVID", 0);
      if (e < 0 || e > 4)
        throw at(r.line, "column '" + table.header[c_evid] + "': EVID " + r.fields[c_evid] +
                             " is not an event code cvnode knows (0 observation, 1 dose, 2 other, 3 reset, "
                             "4 reset and dose)");
      rec.evid = static_cast<int>(e);
    } else {
      // NONMEM's rule without EVID: a record with an amount is a dose; MDV = 1 without one is "other".
      rec.evid = rec.amt != 0 ? 1 : rec.mdv ? 2 : 0;
    }
    const bool dose = rec.evid == 1 || rec.evid == 4;
    if (dose || rec.evid == 3) {
      if (rec.amt < 0)
        throw at(r.line, "column '" + table.header[c_amt] + "': negative amount " + r.fields[c_amt] +
                             " (EVID " + std::to_string(rec.evid) + ")");
      if (dose && c_amt == npos) throw at(r.line, "a dose record (EVID " + std::to_string(rec.evid) + ") but no AMT column");
      if (rec.evid == 3 && rec.amt != 0)
        throw at(r.line, "column '" + table.header[c_amt] + "': amount " + r.fields[c_amt] +
                             " on a reset record (EVID 3); a reset with a dose is EVID 4");
      rec.cmt = integer(r, c_cmt, "CMT", 1);
      if (rec.cmt < 1)
        throw at(r.line, "column '" + table.header[c_cmt] + "': CMT " + r.fields[c_cmt] +
                             " is not a compartment (compartments are numbered from 1)");
      if (!opt.compartment_names.empty() && rec.cmt > static_cast<long>(opt.compartment_names.size()))
        throw at(r.line, "column '" + table.header[c_cmt] + "': CMT " + r.fields[c_cmt] +
                             " is not a compartment (the data have " + std::to_string(opt.compartment_names.size()) +
                             ": " + joined(opt.compartment_names) + ")");
      rec.rate = optional_number(r, c_rate, "rate", 0.0);
      if (rec.rate == -1 || rec.rate == -2)
        throw at(r.line, "column '" + table.header[c_rate] + "': RATE " + r.fields[c_rate] +
                             " (a modelled infusion rate or duration) is not supported: give the rate");
      if (rec.rate < 0)
        throw at(r.line, "column '" + table.header[c_rate] + "': negative rate " + r.fields[c_rate]);
      if (optional_number(r, c_ss, "SS", 0.0) != 0)
        throw at(r.line, "column '" + table.header[c_ss] + "': SS " + r.fields[c_ss] +
                             " (steady-state dosing) is not supported: give the doses that lead to the steady state");
      rec.addl = integer(r, c_addl, "ADDL", 0);
      rec.ii = optional_number(r, c_ii, "II", 0.0);
      if (rec.addl < 0) throw at(r.line, "column '" + table.header[c_addl] + "': negative ADDL " + r.fields[c_addl]);
      if (rec.addl > 0 && !(rec.ii > 0))
        throw at(r.line, "ADDL " + std::to_string(rec.addl) + " additional doses need an interval II > 0" +
                             (c_ii == npos ? std::string(" (no II column)") : ", got '" + r.fields[c_ii] + "'"));
    }
    // Observed values: only on observation records.
    if (rec.evid == 0) {
      const std::size_t C = c_values.empty() ? 1 : c_values.size();
      rec.values.assign(C, kNoValue);
      auto value = [&](std::size_t c) {
        const std::string& s = r.fields[c];
        if (rec.mdv || missing(s)) return kNoValue;
        return number(r, c, "value");
      };
      if (!c_values.empty()) {
        for (std::size_t k = 0; k < C; ++k) rec.values[k] = value(c_values[k]);
      } else {
        rec.values[0] = value(c_dv);
        if (c_dvid != npos) {
          const double dv_id = number(r, c_dvid, "DVID");
          if (std::find(dvid_values.begin(), dvid_values.end(), dv_id) == dvid_values.end()) dvid_values.push_back(dv_id);
          rec.dvid = dv_id;  // turned into a channel index once all values are known
        }
      }
    }
    for (std::size_t c : c_cov) rec.covariates.push_back(missing(r.fields[c]) ? kNoValue : number(r, c, "covariate"));
    bool has_control = false;
    for (std::size_t c : c_ctrl) {
      rec.controls.push_back(missing(r.fields[c]) ? kNoValue : number(r, c, "control"));
      has_control = has_control || !std::isnan(rec.controls.back());
    }
    if (rec.evid == 2 && !has_control) ++ignored_other;
    auto [it, fresh] = by_subject.try_emplace(id);
    if (fresh) subjects.push_back(id);
    it->second.push_back(std::move(rec));
  }
  if (subjects.empty()) throw DataError(path + ": no data rows after the header");

  std::sort(dvid_values.begin(), dvid_values.end());
  std::vector<std::string> channel_names;
  if (!c_values.empty()) channel_names = opt.value_columns;
  else if (c_dvid != npos)
    for (double v : dvid_values) channel_names.push_back(table.header[c_dv] + "_" + exact(v));
  else channel_names = {"DV"};
  if (!opt.channel_names.empty()) {
    if (opt.channel_names.size() != channel_names.size())
      throw DataError(path + ": " + std::to_string(opt.channel_names.size()) + " channel names for " +
                      std::to_string(channel_names.size()) + " channels (" + joined(channel_names) + ")");
    channel_names = opt.channel_names;
  }
  if (!opt.units.empty() && opt.units.size() != channel_names.size())
    throw DataError(path + ": " + std::to_string(opt.units.size()) + " units given for " +
                    std::to_string(channel_names.size()) + " channels");
  const int C = static_cast<int>(channel_names.size());

  std::vector<std::string> compartments = opt.compartment_names;
  if (compartments.empty()) {
    long most = 0;
    for (const auto& [id, rs] : by_subject)
      for (const Record& r : rs)
        if (r.evid == 1 || r.evid == 3 || r.evid == 4) most = std::max(most, r.cmt);
    for (long k = 1; k <= most; ++k) compartments.push_back("cmt" + std::to_string(k));
  }

  NonmemImport out{Dataset(channel_names, opt.units), {}};
  Dataset& d = out.data;
  if (!opt.covariate_columns.empty()) d.set_covariate_names(opt.covariate_columns);
  if (!opt.control_columns.empty()) {
    d.set_control_names(opt.control_columns);
    d.set_control_interpolation(opt.control_interpolation);
  }
  if (!compartments.empty()) d.set_compartment_names(compartments);
  std::size_t expanded = 0, dropped = 0, prediction_rows = 0;

  for (const std::string& id : subjects) {
    std::vector<Record>& rs = by_subject[id];
    std::stable_sort(rs.begin(), rs.end(), [](const Record& a, const Record& b) { return a.time < b.time; });
    const std::string who = "subject '" + id + "'";
    // Observation rows: one per distinct time, channels filled by the records at that time.
    std::vector<double> times;
    std::vector<std::vector<double>> vals;
    std::vector<std::vector<long>> from;  // the line that set each cell (duplicate check)
    double t0 = std::numeric_limits<double>::infinity();
    for (const Record& r : rs) {
      const bool marks_time = r.evid != 2 || r.controls.empty() ||
                              std::all_of(r.controls.begin(), r.controls.end(), [](double v) { return std::isnan(v); });
      if (marks_time) t0 = std::min(t0, r.time);
      if (r.evid != 0) continue;
      if (times.empty() || times.back() != r.time) {
        times.push_back(r.time);
        vals.emplace_back(C, kNoValue);
        from.emplace_back(C, 0);
      }
      if (r.mdv) ++prediction_rows;
      for (std::size_t k = 0; k < r.values.size(); ++k) {
        const int c = c_dvid != npos
                          ? static_cast<int>(std::lower_bound(dvid_values.begin(), dvid_values.end(), r.dvid) - dvid_values.begin())
                          : static_cast<int>(k);
        if (std::isnan(r.values[k])) {
          if (from.back()[c] == 0) from.back()[c] = -r.line;  // a masked cell, may be filled by another record
          continue;
        }
        if (from.back()[c] > 0)
          throw at(r.line, who + ": channel '" + channel_names[c] + "' at time " + exact(r.time) + " repeats line " +
                               std::to_string(from.back()[c]));
        vals.back()[c] = r.values[k];
        from.back()[c] = r.line;
      }
    }
    if (times.empty())
      throw at(rs.front().line, who + ": no observation records (EVID 0): nothing to fit or compare with");
    const double last = times.back();

    Series s;
    s.id = id;
    s.t0 = t0;
    const auto T = static_cast<Eigen::Index>(times.size());
    s.times = Eigen::Map<const Vector>(times.data(), T);
    s.values = Matrix::Zero(T, C);
    s.mask = Matrix::Zero(T, C);
    for (Eigen::Index k = 0; k < T; ++k)
      for (int c = 0; c < C; ++c)
        if (!std::isnan(vals[k][c])) {
          s.values(k, c) = vals[k][c];
          s.mask(k, c) = 1;
        }
    // Events in time order; at one time in file order, ADDL repetitions after the records.
    std::vector<std::pair<EventRecord, long>> events;  // with the line of the record
    for (const Record& r : rs) {
      if (r.evid != 1 && r.evid != 3 && r.evid != 4) continue;
      EventRecord e{r.time, static_cast<int>(r.cmt - 1), r.amt, r.rate, static_cast<Evid>(r.evid)};
      if (r.time > last)
        throw at(r.line, who + ": the " + evid_name(e.kind) + " at time " + exact(r.time) +
                             " comes after the subject's last observation at " + exact(last) +
                             " and cannot affect any (remove the record)");
      events.emplace_back(e, r.line);
      for (long k = 1; k <= r.addl; ++k) {
        EventRecord extra = e;
        extra.kind = Evid::Dose;  // a repetition of a reset-and-dose repeats the dose only
        extra.time = r.time + static_cast<double>(k) * r.ii;
        if (extra.time > last) {
          ++dropped;
          continue;
        }
        events.emplace_back(extra, r.line);
        ++expanded;
      }
    }
    std::stable_sort(events.begin(), events.end(),
                     [](const auto& a, const auto& b) { return a.first.time < b.first.time; });
    for (const auto& [e, line] : events) s.events.push_back(e);

    std::vector<detail::InputCells> cells;
    for (const Record& r : rs) cells.push_back({r.line, r.time, r.covariates, r.controls});
    detail::fill_inputs(cells, opt.covariate_columns, opt.control_columns, path, who, s);
    try {
      d.add(s);
    } catch (const DataError& e) {
      throw DataError(path + ": " + who + " (from line " + std::to_string(rs.front().line) + "): " + e.what());
    }
  }

  nlohmann::json p;
  p["imported_from"] = path;
  p["format"] = "nonmem";
  p["columns"] = table.header;
  d.set_provenance(p.dump());
  if (ignored_other)
    out.notes.push_back(std::to_string(ignored_other) + " EVID 2 record(s) without control values: they only mark a "
                        "subject's start time t0 when earlier than its other records");
  if (prediction_rows)
    out.notes.push_back(std::to_string(prediction_rows) + " observation record(s) with MDV = 1 kept as masked "
                        "observation times (predictions are made there)");
  if (expanded || dropped)
    out.notes.push_back("ADDL: " + std::to_string(expanded) + " additional dose(s) added" +
                        (dropped ? ", " + std::to_string(dropped) + " more after a subject's last observation left out"
                                 : std::string()));
  if (c_cmt == npos && !compartments.empty())
    out.notes.push_back("no CMT column: every dose goes to compartment 1 (" + compartments[0] + ")");
  return out;
}

// ---------------------------------------------------------------------------------------------
namespace {

std::string quote(const std::string& s) {
  if (s.find_first_of(",\"\n\r \t") == std::string::npos) return s;
  std::string out = "\"";
  for (char c : s) out += c == '"' ? std::string("\"\"") : std::string(1, c);
  return out + "\"";
}

}  // namespace

NonmemImportOptions export_import_options(const Dataset& data) {
  NonmemImportOptions o;
  const int C = data.channels();
  if (C == 1) o.channel_names = data.channel_names();
  else o.value_columns = data.channel_names();
  bool any_unit = false;
  for (const auto& u : data.channel_units()) any_unit = any_unit || !u.empty();
  if (any_unit) o.units = data.channel_units();
  o.covariate_columns = data.covariate_names();
  o.control_columns = data.control_names();
  if (data.control_count() > 0) o.control_interpolation = data.control_interpolation();
  o.compartment_names = data.compartment_names();
  return o;
}

std::string import_command_arguments(const NonmemImportOptions& o) {
  std::string s = "--format nonmem";
  auto shell = [](const std::string& w) {
    if (!w.empty() && w.find_first_not_of("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-.,/+:=@%") ==
                          std::string::npos)
      return w;
    std::string q = "'";
    for (char c : w) q += c == '\'' ? std::string("'\\''") : std::string(1, c);
    return q + "'";
  };
  auto list = [&](const char* flag, const std::vector<std::string>& v) {
    if (!v.empty()) s += std::string(" ") + flag + " " + shell(joined(v, ","));
  };
  list("--values", o.value_columns);
  list("--channel-name", o.channel_names);
  list("--units", o.units);
  list("--covariates", o.covariate_columns);
  list("--controls", o.control_columns);
  if (!o.control_columns.empty() && o.control_interpolation != "piecewise_constant")
    s += " --control-interpolation " + o.control_interpolation;
  list("--compartments", o.compartment_names);
  return s;
}

std::vector<std::string> export_nonmem_csv(const Dataset& data, const std::string& path) {
  const int C = data.channels(), K = data.covariate_count(), U = data.control_count();
  const auto& names = data.channel_names();
  std::vector<std::string> notes;
  for (const auto& n : names)
    for (const char* reserved : {"ID", "TIME", "AMT", "EVID", "CMT", "MDV", "RATE"})
      if (lower(n) == lower(reserved))
        throw DataError(path + ": channel '" + n + "' has the name of a standard column of the event layout");
  bool infusion = false;
  for (std::size_t i = 0; i < data.size() && !infusion; ++i)
    for (const EventRecord& e : data.series(i).events) infusion = infusion || e.rate > 0;
  if (data.initial_state_size() > 0)
    notes.push_back("the series' initial states have no column in this layout and were left out");

  io::AtomicOutput out(path);
  {
    std::ostream& f = out.stream();
    f << "ID,TIME";
    if (C == 1) f << ",DV";
    else
      for (const auto& n : names) f << ',' << quote(n);
    f << ",AMT,EVID,CMT,MDV";
    if (infusion) f << ",RATE";
    for (const auto& n : data.covariate_names()) f << ',' << quote(n);
    for (const auto& n : data.control_names()) f << ',' << quote(n);
    f << '\n';
    for (std::size_t i = 0; i < data.size(); ++i) {
      const Series s = data.series(i);
      const std::string id = quote(s.id);
      std::string cov;
      for (int k = 0; k < K; ++k) cov += ',' + exact(s.covariates[k]);
      std::size_t next_knot = 0;
      // Control cells: the knot at exactly time t (once), else empty.
      auto controls = [&](double t) {
        std::string c;
        const bool knot = next_knot < static_cast<std::size_t>(s.control_times.size()) && s.control_times[next_knot] == t;
        for (int u = 0; u < U; ++u) c += ',' + (knot ? exact(s.control_values(next_knot, u)) : std::string());
        if (knot) ++next_knot;
        return c;
      };
      auto empty_controls = [&] { return std::string(static_cast<std::size_t>(U), ','); };
      auto row = [&](double t, const std::string& obs, const std::string& amt, int evid, const std::string& cmt, int mdv,
                     const std::string& rate, const std::string& ctrl) {
        f << id << ',' << exact(t) << obs << ',' << amt << ',' << evid << ',' << cmt << ',' << mdv;
        if (infusion) f << ',' << rate;
        f << cov << ctrl << '\n';
      };
      const std::string no_obs(static_cast<std::size_t>(C), ',');
      // The next control knot on its own EVID 2 record.
      auto knot_row = [&] {
        const double t = s.control_times[next_knot];
        const std::string c = controls(t);
        row(t, no_obs, "", 2, "", 1, "", c);
      };
      // Knots before t0 (a control may start earlier than the model), as EVID 2 records.
      while (next_knot < static_cast<std::size_t>(s.control_times.size()) && s.control_times[next_knot] < s.t0)
        knot_row();
      // t0 before every observation and event: an EVID 2 record without control values marks it.
      const double first = std::min(s.times[0], s.events.empty() ? s.times[0] : s.events.front().time);
      if (s.t0 < first) row(s.t0, no_obs, "", 2, "", 1, "", empty_controls());
      std::size_t e = 0;
      auto flush_events = [&](double upto, bool inclusive) {
        while (e < s.events.size() && (s.events[e].time < upto || (inclusive && s.events[e].time == upto))) {
          const EventRecord& ev = s.events[e++];
          // Control knots strictly before this event's time come first, on their own records.
          while (next_knot < static_cast<std::size_t>(s.control_times.size()) && s.control_times[next_knot] < ev.time)
            knot_row();
          row(ev.time, no_obs, exact(ev.amount), static_cast<int>(ev.kind), std::to_string(ev.compartment + 1), 1,
              exact(ev.rate), controls(ev.time));
        }
      };
      for (Eigen::Index k = 0; k < s.times.size(); ++k) {
        const double t = s.times[k];
        flush_events(t, false);  // events before this time; events at it come after the observation
        while (next_knot < static_cast<std::size_t>(s.control_times.size()) && s.control_times[next_knot] < t)
          knot_row();
        std::string obs;
        bool any = false;
        for (int c = 0; c < C; ++c) {
          obs += ',';
          if (s.mask(k, c) != 0) {
            obs += exact(s.values(k, c));
            any = true;
          }
        }
        row(t, obs, "", 0, "", any ? 0 : 1, "", controls(t));
        flush_events(t, true);
      }
      flush_events(std::numeric_limits<double>::infinity(), true);
      while (next_knot < static_cast<std::size_t>(s.control_times.size()))
        knot_row();
    }
  }
  out.commit();  // a write error anywhere above is reported here, naming the file
  return notes;
}

}  // namespace cvnode
