#include "ode/sundials_raii.h"

#include <cstdlib>
#include <new>
#include <string>

#include <sunmatrix/sunmatrix_dense.h>

namespace cvnode::detail {

Context::Context() {
  if (SUNContext_Create(nullptr, &ctx_) != 0) throw std::bad_alloc();
}

NVectorPtr make_vector(sunindextype n, SUNContext ctx) {
  N_Vector v = N_VNew_Serial(n, ctx);
  if (!v) throw std::bad_alloc();
  N_VConst(0.0, v);
  return NVectorPtr(v);
}

std::string flag_name(int flag) {
  char* name = CVodeGetReturnFlagName(flag);  // malloc'ed by CVODES
  std::string s = name ? name : "unknown flag";
  std::free(name);
  return s;
}

}  // namespace cvnode::detail
