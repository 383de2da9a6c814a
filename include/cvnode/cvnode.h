// Everything a user of cvnode needs, in one include.
#pragma once

#include "cvnode/activation.h"
#include "cvnode/batch.h"
#include "cvnode/dynamics.h"
#include "cvnode/errors.h"
#include "cvnode/loss.h"
#include "cvnode/mlp.h"
#include "cvnode/observations.h"
#include "cvnode/running_cost.h"
#include "cvnode/solver.h"
#include "cvnode/solver_options.h"
#include "cvnode/solver_stats.h"
#include "cvnode/stacked.h"
