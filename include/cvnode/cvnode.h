// Everything a user of cvnode needs, in one include. (autodiff_dynamics.h is left out: it pulls
// in Eigen's unsupported AutoDiff module; include it where a physics term uses it.) The command
// line program's own workflow (configuration files, `cvnode fit`, sweeps, benchmark problems)
// lives in src/app/ and is not part of the installed API.
#pragma once

// Dynamics and networks
#include "cvnode/activation.h"
#include "cvnode/conv_dynamics.h"
#include "cvnode/dynamics.h"
#include "cvnode/mlp.h"
#include "cvnode/stacked.h"
// Known physics and hybrid models
#include "cvnode/hybrid.h"
#include "cvnode/hybrid_model.h"
#include "cvnode/linear_decay.h"
#include "cvnode/mass_action.h"
#include "cvnode/parameter_transform.h"
#include "cvnode/physics.h"
// Solving and gradients
#include "cvnode/batch.h"
#include "cvnode/cvodes_options.h"
#include "cvnode/dopri5_options.h"
#include "cvnode/engine.h"
#include "cvnode/errors.h"
#include "cvnode/loss.h"
#include "cvnode/observation_map.h"
#include "cvnode/observations.h"
#include "cvnode/problem.h"
#include "cvnode/running_cost.h"
#include "cvnode/solver.h"
#include "cvnode/solver_options.h"
#include "cvnode/solver_stats.h"
// Data, checkpoints and training
#include "cvnode/checkpoint.h"
#include "cvnode/csv.h"
#include "cvnode/dataset.h"
#include "cvnode/generators.h"
#include "cvnode/model.h"
#include "cvnode/optimizer.h"
#include "cvnode/schedule.h"
#include "cvnode/trainer.h"
