#include "ode/sundials_raii.h"

#include <cmath>
#include <cstdlib>
#include <new>
#include <string>

#include <nvector/nvector_serial.h>
#include <sunmatrix/sunmatrix_dense.h>

namespace cvnode::detail {

Context::Context() {
  if (SUNContext_Create(nullptr, &ctx_) != 0) throw std::bad_alloc();
}

// Debian's libsundials' serial vector operations are built for baseline x86-64 at -O2, so none
// of their loops is vectorized; on the vectors CVODES works on they were most of its time (B3
// with BDF: N_VLinearSum, N_VWrmsNorm and N_VScale 80% of the profile). make_vector puts these
// in the vector's operation table, which CVODES' clones copy. They compute exactly what
// SUNDIALS' own do, element by element (nvector_serial.c: (a x) + (b y), with its special cases
// a == b: a (x + y) and a == -b: a (x - y); sums in index order), and this file is compiled
// without floating-point contraction (CMakeLists.txt), so every result keeps its bits: the same
// steps, errors and shipped data; only the element-wise loops now run on this build's
// instruction set.
namespace {
struct View {
  double* d;
  sunindextype n;
};
View data(N_Vector v) { return {NV_DATA_S(v), NV_LENGTH_S(v)}; }

void linear_sum(realtype a, N_Vector x, realtype b, N_Vector y, N_Vector z) {
  const View X = data(x), Y = data(y), Z = data(z);
  const bool unit = a == 1 || a == -1;
  if (a == b && !unit) {
    for (sunindextype i = 0; i < Z.n; ++i) Z.d[i] = a * (X.d[i] + Y.d[i]);
  } else if (a == -b && !unit) {
    for (sunindextype i = 0; i < Z.n; ++i) Z.d[i] = a * (X.d[i] - Y.d[i]);
  } else {
    for (sunindextype i = 0; i < Z.n; ++i) Z.d[i] = (a * X.d[i]) + (b * Y.d[i]);
  }
}
void scale(realtype c, N_Vector x, N_Vector z) {
  const View X = data(x), Z = data(z);
  for (sunindextype i = 0; i < Z.n; ++i) Z.d[i] = c * X.d[i];
}
void constant(realtype c, N_Vector z) {
  const View Z = data(z);
  for (sunindextype i = 0; i < Z.n; ++i) Z.d[i] = c;
}
void product(N_Vector x, N_Vector y, N_Vector z) {
  const View X = data(x), Y = data(y), Z = data(z);
  for (sunindextype i = 0; i < Z.n; ++i) Z.d[i] = X.d[i] * Y.d[i];
}
void absolute(N_Vector x, N_Vector z) {
  const View X = data(x), Z = data(z);
  for (sunindextype i = 0; i < Z.n; ++i) Z.d[i] = std::abs(X.d[i]);
}
void inverse(N_Vector x, N_Vector z) {
  const View X = data(x), Z = data(z);
  for (sunindextype i = 0; i < Z.n; ++i) Z.d[i] = 1.0 / X.d[i];
}
void add_constant(N_Vector x, realtype b, N_Vector z) {
  const View X = data(x), Z = data(z);
  for (sunindextype i = 0; i < Z.n; ++i) Z.d[i] = X.d[i] + b;
}
realtype weighted_square_sum(N_Vector x, N_Vector w) {
  const View X = data(x), W = data(w);
  double sum = 0;
  for (sunindextype i = 0; i < X.n; ++i) {
    const double p = X.d[i] * W.d[i];
    sum += p * p;
  }
  return sum;
}
realtype weighted_rms_norm(N_Vector x, N_Vector w) {
  return std::sqrt(weighted_square_sum(x, w) / static_cast<double>(NV_LENGTH_S(x)));
}
}  // namespace

NVectorPtr make_vector(sunindextype n, SUNContext ctx) {
  N_Vector v = N_VNew_Serial(n, ctx);
  if (!v) throw std::bad_alloc();
  N_Vector_Ops ops = v->ops;
  ops->nvlinearsum = linear_sum;
  ops->nvscale = scale;
  ops->nvconst = constant;
  ops->nvprod = product;
  ops->nvabs = absolute;
  ops->nvinv = inverse;
  ops->nvaddconst = add_constant;
  ops->nvwsqrsumlocal = weighted_square_sum;
  ops->nvwrmsnorm = weighted_rms_norm;
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
