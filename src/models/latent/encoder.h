// Encoders of irregular, masked observations into q(z0 | x) = N(mu, diag exp(logvar)), run
// backwards in time from the last observation to the series' initial time t0:
//  * rnn: a GRU whose input at each observation is [x .* m, m, dt] (values with missing entries
//    zeroed, the mask, and the gap to the later observation processed before it), the paper's
//    encoder (Chen et al. 2018) with time gaps; a last step with no data carries the gap from
//    the first observation back to t0.
//  * ode_rnn: between observations the hidden state follows a neural ODE dh/ds = g(h) over the
//    gap (s runs backwards in the series' time; g is autonomous), and at each observation a GRU
//    update with input [x .* m, m] (Rubanova et al. 2019); the ODE also carries h from the first
//    observation back to t0. The ODE segments go through cvnode's engines (OdePath).
// A dense head maps the final hidden state to [mu; logvar].
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "cvnode/mlp.h"
#include "cvnode/observations.h"
#include "cvnode/solver_options.h"
#include "models/latent/dense.h"
#include "models/latent/gru.h"
#include "models/latent/ode_path.h"

namespace cvnode::latent {

// The rows of a series that observe at least one channel, with missing entries zeroed: what an
// encoder reads.
struct Observed {
  double t0 = 0;
  Vector times;   // strictly increasing, >= t0
  Matrix values;  // rows x channels, 0 where missing
  Matrix mask;    // rows x channels, 1 observed / 0 missing
  int rows() const { return static_cast<int>(times.size()); }
};
Observed observed_rows(const Trajectory& series);

enum class EncoderKind { Rnn, OdeRnn };
EncoderKind parse_encoder_kind(const std::string& name);  // "rnn" | "ode_rnn"; OptionsError
const char* encoder_kind_name(EncoderKind k);

struct EncoderSpec {
  EncoderKind kind = EncoderKind::Rnn;
  int channels = 1;                  // observed channels
  int latent = 4;                    // size of z0
  int hidden = 25;                   // GRU hidden state
  std::vector<int> head_hidden;      // hidden widths of the head h -> [mu; logvar] (empty: linear)
  Activation head_activation = Activation::Tanh;
  std::vector<int> ode_hidden = {25};  // ode_rnn: hidden widths of g
  Activation ode_activation = Activation::Tanh;
};

class Encoder {
 public:
  explicit Encoder(EncoderSpec spec);
  const EncoderSpec& spec() const { return spec_; }
  int param_size() const { return n_gru_ + n_head_ + n_ode_; }
  void initialize(std::uint64_t seed, VectorRef theta) const;
  // The ODE of the ode_rnn kind (null for rnn).
  const Mlp* ode() const { return ode_.get(); }

  // One thread's encoder: its ODE path and what the last encode() keeps for backward().
  class Run {
   public:
    Run(const Encoder& encoder, const SolverOptions& options);
    // mu and logvar of q(z0 | x) from the observed rows (at least one).
    void encode(ConstVectorRef theta, const Observed& obs, Vector& mu, Vector& logvar);
    // Adds dLoss/dtheta for the cotangents of the last encode()'s mu and logvar.
    void backward(ConstVectorRef theta, ConstVectorRef dmu, ConstVectorRef dlogvar, VectorRef dtheta);
    long nfe() const { return nfe_; }

   private:
    const Encoder& e_;
    std::unique_ptr<OdePath> path_;
    // In processing order: an ODE segment (gap > 0, ode_rnn) before a GRU step or on its own.
    struct Item {
      double gap = 0;
      bool ode = false, gru = false;
      Vector h_before_ode, h_after_ode;
      GruCell::Step step;
    };
    std::vector<Item> items_;
    Dense::Tape head_tape_;
    Vector h_final_;
    long nfe_ = 0;
  };

 private:
  friend class Run;
  EncoderSpec spec_;
  GruCell gru_;
  Dense head_;
  std::unique_ptr<Mlp> ode_;
  int n_gru_, n_head_, n_ode_;
};

}  // namespace cvnode::latent
