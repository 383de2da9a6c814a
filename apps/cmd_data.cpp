// `cvnode data ...`: import, export, inspect, split and generate datasets. Option parsing and
// printing only; the work is in the library (dataset.h, csv.h, generators.h).
#include <algorithm>
#include <array>
#include <cmath>
#include <iomanip>
#include <iostream>
#include <limits>
#include <sstream>

#include "commands.h"
#include "cvnode/csv.h"
#include "cvnode/dataset.h"
#include "cvnode/densities.h"
#include "cvnode/errors.h"
#include "cvnode/generators.h"
#include "cvnode/nonmem.h"
#include "cvnode/pk.h"
#include "data/atomic_file.h"
#include "options.h"

namespace cvnode::app {

namespace {

struct ImportArgs {
  std::string file, out, id, time = "time", channel, series_id = "series_0", format = "rows", dvid;
  std::string interpolation = "piecewise_constant";
  std::vector<std::string> values, units, covariates, controls, ignore, compartments;
  bool wide = false;
};

std::string joined(const std::vector<std::string>& v, const char* separator = ", ") {
  std::string s;
  for (const auto& x : v) s += (s.empty() ? "" : separator) + x;
  return s;
}

void import(const ImportArgs& a) {
  io::check_not_input("data import-csv", a.out, {a.file});
  if (a.wide && a.format != "rows" && a.format != "wide")
    throw OptionsError("import-csv: --wide and --format " + a.format + " contradict each other");
  const std::string format = a.wide ? "wide" : a.format;
  Dataset d;
  std::vector<std::string> notes;
  if (format == "nonmem") {
    NonmemImportOptions o;
    if (!a.id.empty()) o.id = a.id;
    if (a.time != "time") o.time = a.time;  // the default matches TIME (names ignore case)
    o.value_columns = a.values;
    o.dvid = a.dvid;
    if (!a.channel.empty()) {
      std::stringstream in(a.channel);
      for (std::string n; std::getline(in, n, ',');) o.channel_names.push_back(n);
    }
    o.units = a.units;
    o.covariate_columns = a.covariates;
    o.control_columns = a.controls;
    o.control_interpolation = a.interpolation;
    o.ignore_columns = a.ignore;
    o.compartment_names = a.compartments;
    NonmemImport r = import_nonmem_csv(a.file, o);
    d = std::move(r.data);
    notes = std::move(r.notes);
  } else if (format == "rows" || format == "wide") {
    if (!a.ignore.empty() || !a.compartments.empty() || !a.dvid.empty())
      throw OptionsError("import-csv: --ignore, --compartments and --dvid belong to --format nonmem");
    CsvImportOptions o;
    o.id_column = a.id;
    o.time_column = a.time;
    o.value_columns = a.values;
    o.units = a.units;
    o.covariate_columns = a.covariates;
    o.control_columns = a.controls;
    o.wide = format == "wide";
    o.channel_name = a.channel.empty() ? "value" : a.channel;
    o.single_series_id = a.series_id;
    d = import_csv(a.file, o);
    if (d.control_count() > 0) d.set_control_interpolation(a.interpolation);
    // Rows: a column becomes a channel only when --values names it (a stray column, a note or a
    // second id, silently fitted as a channel is worse than a refusal). Wide: every column but
    // time is a series by the layout's definition; the output says which.
    if (a.values.empty() && format == "rows")
      throw OptionsError("import-csv: " + a.file + ": --values is not given; name the channel columns among " +
                         joined(d.channel_names()) + " (e.g. --values " + d.channel_names().front() +
                         "), or give the others as --covariates or --controls");
    if (a.values.empty()) {
      std::vector<std::string> taken;
      for (std::size_t i = 0; i < d.size(); ++i) taken.push_back(d.id(i));
      notes.push_back("series taken from every column but " + a.time + ": " + joined(taken) +
                      " (choose them with --values)");
    }
  } else {
    throw OptionsError("import-csv: --format " + a.format + " (expected rows, wide or nonmem)");
  }
  d.write(a.out);
  std::cout << a.out << ": " << d.size() << " series, " << d.observations() << " observation times, " << d.channels()
            << " channel(s) (" << joined(d.channel_names()) << ")";
  if (d.covariate_count()) std::cout << ", covariates " << joined(d.covariate_names());
  if (d.control_count()) std::cout << ", controls " << joined(d.control_names());
  if (d.has_events())
    std::cout << ", " << d.event_count() << " events into compartments " << joined(d.compartment_names());
  std::cout << "\n";
  for (const auto& n : notes) std::cout << "  note: " << n << "\n";
}

void export_to_csv(const std::string& file, const std::string& out, std::string format) {
  io::check_not_input("data export-csv", out, {file});
  const Dataset d = Dataset::read(file);
  if (format.empty()) format = d.has_events() || d.control_count() > 0 ? "nonmem" : "rows";
  if (format == "rows") {
    export_csv(d, out);
    std::cout << out << ": rows layout (id, time, channels" << (d.covariate_count() ? ", covariates" : "")
              << "); read it back with: cvnode data import-csv " << out << " --id id --values "
              << joined(d.channel_names(), ",")
              << (d.covariate_count() ? " --covariates " + joined(d.covariate_names(), ",") : std::string()) << "\n";
  } else if (format == "nonmem") {
    const auto notes = export_nonmem_csv(d, out);
    std::cout << out << ": event layout (ID, TIME, " << (d.channels() == 1 ? "DV" : "one column per channel")
              << ", AMT, EVID, CMT, MDV ...); read it back with: cvnode data import-csv " << out << " "
              << import_command_arguments(export_import_options(d)) << "\n";
    for (const auto& n : notes) std::cout << "  note: " << n << "\n";
  } else {
    throw OptionsError("export-csv: --format " + format + " (expected rows or nonmem)");
  }
}

struct SplitArgs {
  std::string file, prefix;
  double train = 0.8, validation = 0.1;
  std::uint64_t seed = 0;
};

double median(std::vector<double> v) {
  if (v.empty()) return std::nan("");
  std::sort(v.begin(), v.end());
  return v.size() % 2 ? v[v.size() / 2] : 0.5 * (v[v.size() / 2 - 1] + v[v.size() / 2]);
}

std::string min_med_max(const std::vector<double>& v) {
  if (v.empty()) return "n/a";
  std::ostringstream o;
  o << *std::min_element(v.begin(), v.end()) << " / " << median(v) << " / " << *std::max_element(v.begin(), v.end());
  return o.str();
}

void info(const std::string& file, bool per_series) {
  const Dataset d = Dataset::read(file);
  const int C = d.channels();
  std::cout << file << ": " << d.size() << " series, " << d.observations() << " observation times, " << C
            << " channel(s), format version " << d.format_version() << "\n";
  const Vector missing = d.missing_fraction();
  for (int c = 0; c < C; ++c)
    std::cout << "  channel " << d.channel_names()[c] << " [" << (d.channel_units()[c].empty() ? "-" : d.channel_units()[c])
              << "]: missing " << std::fixed << std::setprecision(2) << 100 * missing[c] << "%" << std::defaultfloat
              << std::setprecision(6) << "\n";
  std::vector<double> counts, firsts, lasts, dts, series_dt;
  for (std::size_t i = 0; i < d.size(); ++i) {
    const Series s = d.series(i);
    counts.push_back(static_cast<double>(s.times.size()));
    firsts.push_back(s.times[0]);
    lasts.push_back(s.times[s.times.size() - 1]);
    std::vector<double> own;
    for (Eigen::Index k = 1; k < s.times.size(); ++k) own.push_back(s.times[k] - s.times[k - 1]);
    dts.insert(dts.end(), own.begin(), own.end());
    if (per_series) {
      const double miss = 1.0 - s.mask.sum() / static_cast<double>(s.mask.size());
      std::cout << "  series " << s.id << ": " << s.times.size() << " times on [" << s.times[0] << ", "
                << s.times[s.times.size() - 1] << "], t0 " << s.t0 << ", interval min/median/max "
                << min_med_max(own) << ", missing " << std::fixed << std::setprecision(2) << 100 * miss << "%"
                << std::defaultfloat << std::setprecision(6) << "\n";
    }
  }
  std::cout << "  times per series (min / median / max): " << min_med_max(counts) << "\n"
            << "  first time: " << min_med_max(firsts) << "\n"
            << "  last time: " << min_med_max(lasts) << "\n"
            << "  sampling interval over all series: " << min_med_max(dts) << "\n"
            << "  initial states: " << (d.initial_state_size() ? std::to_string(d.initial_state_size()) + " entries" : "none")
            << ", covariates: " << d.covariate_count() << ", controls: " << d.control_count()
            << (d.control_count() ? " (" + d.control_interpolation() + ")" : "") << "\n";
  if (d.has_events()) {
    std::size_t kinds[5] = {0, 0, 0, 0, 0}, infusions = 0;
    std::vector<double> per_series;
    for (std::size_t i = 0; i < d.size(); ++i) {
      const Series s = d.series(i);
      per_series.push_back(static_cast<double>(s.events.size()));
      for (const EventRecord& e : s.events) {
        ++kinds[static_cast<int>(e.kind)];
        infusions += e.rate > 0;
      }
    }
    std::cout << "  events: " << d.event_count() << " (" << kinds[1] << " doses of which " << infusions
              << " infusions, " << kinds[3] << " resets, " << kinds[4] << " resets with a dose), per series "
              << min_med_max(per_series) << "; compartments " << joined(d.compartment_names()) << "\n";
  }
  if (!d.normalization().empty()) {
    std::cout << "  normalization (" << (d.normalized() ? "applied" : "stored, not applied") << "):";
    for (int c = 0; c < C; ++c)
      std::cout << " " << d.channel_names()[c] << " mean " << d.normalization().mean[c] << " std "
                << d.normalization().std[c] << (c + 1 < C ? ";" : "");
    std::cout << "\n";
  }
  if (!d.provenance().empty()) std::cout << "  provenance: " << d.provenance() << "\n";
}

void split(const SplitArgs& a) {
  const Dataset d = Dataset::read(a.file);
  const Split s = d.split(a.train, a.validation, a.seed);
  if (s.train.empty()) throw DataError(a.file + ": the training split is empty (--train too small for " +
                                       std::to_string(d.size()) + " series)");
  const Normalization n = d.compute_normalization(s.train);
  const std::string prefix = a.prefix.empty() ? a.file.substr(0, a.file.size() - (a.file.size() > 3 &&
                                                a.file.compare(a.file.size() - 3, 3, ".h5") == 0 ? 3 : 0))
                                              : a.prefix;
  const std::pair<const char*, const std::vector<std::size_t>*> parts[] = {
      {"train", &s.train}, {"validation", &s.validation}, {"test", &s.test}};
  for (const auto& [name, idx] : parts) {
    Dataset part = d.subset(*idx);
    part.set_normalization(n);  // the training statistics, stored (not applied) in every part
    const std::string out = prefix + "_" + name + ".h5";
    io::check_not_input("data split", out, {a.file});
    part.write(out);
    std::cout << out << ": " << part.size() << " series\n";
  }
}

}  // namespace

void add_data(CLI::App& app) {
  CLI::App* data = app.add_subcommand("data", "Import, export, inspect, split and generate datasets");
  data->require_subcommand(1);

  auto imp = std::make_shared<ImportArgs>();
  CLI::App* ic = data->add_subcommand("import-csv", "CSV (rows, wide, or the NONMEM event layout) to HDF5");
  ic->add_option("file", imp->file, "CSV file")->required();
  ic->add_option("--out,-o", imp->out, "Output HDF5 file")->required();
  ic->add_option("--format", imp->format,
                 "rows (one row per series and time), wide (one column per series) or nonmem (ID, TIME, DV, AMT, "
                 "EVID, CMT, MDV, RATE ...: doses as events)")
      ->capture_default_str();
  ic->add_option("--id", imp->id, "Series id column (rows: omit when the file is one series; nonmem: default ID)");
  ic->add_option("--time", imp->time, "Time column")->capture_default_str();
  ic->add_option("--values", imp->values,
                 "Value columns, comma separated (rows: required, the channels; wide: the series, default every "
                 "column but time; nonmem: one column per channel instead of DV)")
      ->delimiter(',');
  ic->add_option("--units", imp->units, "Units, one per channel, comma separated")->delimiter(',');
  ic->add_option("--covariates", imp->covariates, "Static per-series covariate columns, comma separated")->delimiter(',');
  ic->add_option("--controls", imp->controls, "Time-varying input columns u(t), comma separated")->delimiter(',');
  ic->add_option("--control-interpolation", imp->interpolation, "piecewise_constant or linear")->capture_default_str();
  ic->add_option("--compartments", imp->compartments, "nonmem: names of compartments 1, 2, ... (CMT), comma separated")
      ->delimiter(',');
  ic->add_option("--dvid", imp->dvid, "nonmem: column whose values select the channel of each DV (long layout)");
  ic->add_option("--ignore", imp->ignore, "nonmem: columns to read past, comma separated")->delimiter(',');
  ic->add_flag("--wide", imp->wide, "Same as --format wide");
  ic->add_option("--channel-name", imp->channel,
                 "wide: name of the channel (default value); nonmem: name(s) of the DV channel(s), comma separated");
  ic->add_option("--series-id", imp->series_id, "Id of the series when there is no id column")->capture_default_str();
  ic->callback([imp] { import(*imp); });

  auto exp = std::make_shared<std::array<std::string, 3>>();
  CLI::App* ec = data->add_subcommand("export-csv", "HDF5 dataset to CSV (rows layout, or the event layout for data "
                                                    "with events or controls)");
  ec->add_option("file", (*exp)[0], "HDF5 dataset")->required();
  ec->add_option("--out,-o", (*exp)[1], "Output CSV file")->required();
  ec->add_option("--format", (*exp)[2], "rows or nonmem (default: nonmem when the data have events or controls)");
  ec->callback([exp] { export_to_csv((*exp)[0], (*exp)[1], (*exp)[2]); });

  auto inf = std::make_shared<std::pair<std::string, bool>>();
  CLI::App* nc = data->add_subcommand("info", "Counts, time ranges, sampling, missing fractions, units");
  nc->add_option("file", inf->first, "HDF5 dataset")->required();
  nc->add_flag("--per-series", inf->second, "One line per series");
  nc->callback([inf] { info(inf->first, inf->second); });

  auto sp = std::make_shared<SplitArgs>();
  CLI::App* sc = data->add_subcommand("split", "Seeded train/validation/test split by series into three files, "
                                               "each storing the training split's normalisation");
  sc->add_option("file", sp->file, "HDF5 dataset")->required();
  sc->add_option("--train", sp->train, "Fraction of series for training")->capture_default_str()
      ->check(real_range(0, 1, true, false));
  sc->add_option("--validation", sp->validation, "Fraction for validation (test: the rest)")->capture_default_str()
      ->check(real_range(0, 1));
  sc->add_option("--seed", sp->seed, "Shuffle seed")->capture_default_str()
      ->check(int_range(0, std::numeric_limits<long long>::max()));
  sc->add_option("--out-prefix", sp->prefix, "Writes PREFIX_train.h5, PREFIX_validation.h5, PREFIX_test.h5 "
                                             "(default: the input without .h5)");
  sc->callback([sp] { split(*sp); });

  auto gen = std::make_shared<std::pair<GeneratorOptions, std::string>>();
  auto regular = std::make_shared<bool>(false);
  CLI::App* gc = data->add_subcommand("generate", "Synthetic dataset from known dynamics");
  GeneratorOptions& g = gen->first;
  std::vector<std::string> systems = generator_systems();
  for (const std::string& k : density_kinds()) systems.push_back(k);
  auto dens = std::make_shared<DensityOptions>();
  gc->add_option("--system", g.system, "spiral, lotka_volterra, damped_oscillator or robertson; or a density for "
                                       "flows: moons, circles, eight_gaussians, checkerboard, mixture (--series "
                                       "points, one series each; docs/cnf.md)")
      ->check(CLI::IsMember(systems))->capture_default_str();
  gc->add_option("--dim", dens->dim, "mixture: dimension")->capture_default_str();
  gc->add_option("--components", dens->components, "mixture: number of Gaussian components")->capture_default_str();
  gc->add_option("--spread", dens->spread, "mixture: std of the component means")->capture_default_str();
  const int int_max = std::numeric_limits<int>::max();
  const long long seed_max = std::numeric_limits<long long>::max();
  gc->add_option("--series", g.series, "Number of series")->capture_default_str()->check(int_range(1, int_max));
  gc->add_option("--observations", g.observations, "Observation times per series")->capture_default_str()
      ->check(int_range(1, 1 << 27));
  gc->add_option("--grid", g.grid, "Fine grid points the times are drawn from (0: 10 x observations)")->capture_default_str()
      ->check(int_range(0, 1 << 30));
  gc->add_flag("--regular", *regular, "Evenly spaced times shared by all series (default: irregular)");
  gc->add_option("--t-end", g.t_end, "Horizon (0: the system's default)")->capture_default_str()->check(real_range(0, 1e15));
  gc->add_option("--noise", g.noise, "Noise std relative to each channel's RMS")->capture_default_str()->check(real_range(0, 1e6));
  gc->add_flag("--relative-noise", g.relative_noise, "Noise std relative to each entry's own value (multiplicative)");
  gc->add_option("--t-start", g.t_start, "First time of a logarithmic grid (0: t_end * 1e-8)")->capture_default_str()
      ->check(real_range(0, 1e15));
  gc->add_option("--missing", g.missing, "Probability an entry is missing")->capture_default_str()
      ->check(real_range(0, 1, false, true));
  gc->add_option("--seed", g.seed, "Random seed")->capture_default_str()->check(int_range(0, seed_max));
  gc->add_option("--out,-o", gen->second, "Output HDF5 file");
  gc->require_subcommand(0, 1);
  CLI::Option* noise_opt = gc->get_option("--noise");
  gc->callback([gen, regular, gc, dens, noise_opt] {
    if (gc->got_subcommand("pk")) return;
    if (gen->second.empty()) throw OptionsError("data generate: --out FILE is required");
    const auto kinds = density_kinds();
    if (std::find(kinds.begin(), kinds.end(), gen->first.system) != kinds.end()) {
      // A density for flows: --noise is its Gaussian std when given (else the density's default).
      dens->kind = gen->first.system;
      dens->seed = gen->first.seed;
      dens->noise = noise_opt->count() ? gen->first.noise : -1;
      const auto d = make_density(*dens);
      const Dataset data = density_dataset(*d, gen->first.series, gen->first.seed);
      data.write(gen->second);
      const EntropyEstimate h = dataset_entropy(data);
      std::cout << gen->second << ": " << data.size() << " points of " << d->kind() << " in " << d->dim()
                << " dimension(s); entropy " << h.value << " nats (+- " << h.standard_error << ")\n";
      return;
    }
    gen->first.irregular = !*regular;
    const Dataset d = generate(gen->first);
    d.write(gen->second);
    std::cout << gen->second << ": " << d.size() << " series, " << d.observations() << " observation times, "
              << d.channels() << " channel(s)\n";
  });

  auto pk = std::make_shared<std::pair<PkOptions, std::string>>();
  PkOptions& po = pk->first;
  CLI::App* pc = gc->add_subcommand("pk", "Population pharmacokinetics: oral one-compartment model with first-order "
                                          "absorption (closed form), doses as events, weight covariate");
  pc->add_option("--subjects,--series", po.subjects, "Number of subjects")->capture_default_str()->check(int_range(1, int_max));
  pc->add_option("--observations", po.observations, "Samples per subject")->capture_default_str()->check(int_range(1, 1 << 27));
  pc->add_option("--doses", po.doses, "Doses per subject, every --interval from t = 0")->capture_default_str()->check(int_range(1, 1000000));
  pc->add_option("--interval", po.interval, "Dosing interval (h)")->capture_default_str()->check(real_range(0, 1e9, true, false));
  pc->add_option("--t-end", po.t_end, "Last sampling time (h)")->capture_default_str()->check(real_range(0, 1e9, true, false));
  pc->add_option("--dose", po.dose, "Dose (mg); subjects get 0.5x, 1x, 2x in turn")->capture_default_str()->check(real_range(0, 1e12, true, false));
  pc->add_option("--ka", po.ka, "Population absorption rate (1/h) at 70 kg")->capture_default_str()->check(real_range(0, 1e6, true, false));
  pc->add_option("--ke", po.ke, "Population elimination rate (1/h) at 70 kg")->capture_default_str()->check(real_range(0, 1e6, true, false));
  pc->add_option("--V", po.V, "Population volume (L) at 70 kg")->capture_default_str()->check(real_range(0, 1e9, true, false));
  pc->add_option("--omega-ka", po.omega_ka, "Std of log(ka) between subjects")->capture_default_str()->check(real_range(0, 10));
  pc->add_option("--omega-ke", po.omega_ke, "Std of log(ke) between subjects")->capture_default_str()->check(real_range(0, 10));
  pc->add_option("--omega-V", po.omega_V, "Std of log(V) between subjects")->capture_default_str()->check(real_range(0, 10));
  pc->add_option("--weight-median", po.weight_median, "Median body weight (kg)")->capture_default_str()->check(real_range(0, 1e4, true, false));
  pc->add_option("--weight-cv", po.weight_cv, "Coefficient of variation of body weight")->capture_default_str()->check(real_range(0, 10));
  pc->add_option("--noise", po.noise, "Proportional error: y = C (1 + noise eps)")->capture_default_str()->check(real_range(0, 0.5, false, true));
  pc->add_option("--seed", po.seed, "Random seed")->capture_default_str()->check(int_range(0, seed_max));
  pc->add_option("--out,-o", pk->second, "Output HDF5 file")->required();
  pc->callback([pk] {
    const Dataset d = generate_pk(pk->first);
    d.write(pk->second);
    std::cout << pk->second << ": " << d.size() << " subjects, " << d.observations() << " samples, "
              << d.event_count() << " doses into compartment 'depot'; covariate WT\n";
  });
}

}  // namespace cvnode::app
