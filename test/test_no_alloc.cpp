// No heap allocation inside a right-hand side, VJP, Jacobian or JVP call: malloc and the aligned
// allocators are interposed in this test binary and counted while the Dynamics is evaluated
// (Eigen allocates through malloc, operator new too, libgomp through memalign, so every heap
// allocation passes through here); under AddressSanitizer its allocation hooks count instead.
// ctest: labels=unit,sanitize timeout=60
#define BOOST_TEST_MODULE no_alloc
#include <boost/test/unit_test.hpp>

#include <atomic>
#include <cerrno>
#include <cstdlib>

#include "cvnode/cvnode.h"
#include "test_util.h"

namespace {
std::atomic<bool> counting{false};
std::atomic<long> allocations{0};
}  // namespace

#if defined(__SANITIZE_ADDRESS__)
// AddressSanitizer owns malloc (an interposer would bypass its checks): it reports every
// allocation to these hooks instead, so the counts hold in the sanitizer build too.
// Declared here: GCC ships no sanitizer/allocator_interface.h (compiler-rt, i.e. clang, does),
// but GCC's libasan exports the function.
extern "C" int __sanitizer_install_malloc_and_free_hooks(void (*)(const volatile void*, size_t),
                                                         void (*)(const volatile void*));
namespace {
void on_malloc(const volatile void*, size_t) {
  if (counting.load(std::memory_order_relaxed)) allocations.fetch_add(1);
}
void on_free(const volatile void*) {}
const int hooks_installed = __sanitizer_install_malloc_and_free_hooks(on_malloc, on_free);
}  // namespace
#else
extern "C" void* __libc_malloc(size_t);
extern "C" void* __libc_calloc(size_t, size_t);
extern "C" void* __libc_realloc(void*, size_t);

extern "C" void* malloc(size_t n) {
  if (counting.load(std::memory_order_relaxed)) allocations.fetch_add(1);
  return __libc_malloc(n);
}
extern "C" void* calloc(size_t a, size_t b) {
  if (counting.load(std::memory_order_relaxed)) allocations.fetch_add(1);
  return __libc_calloc(a, b);
}
extern "C" void* realloc(void* p, size_t n) {
  if (counting.load(std::memory_order_relaxed)) allocations.fetch_add(1);
  return __libc_realloc(p, n);
}
// The aligned allocators too: libgomp takes its team descriptors from them (an OpenMP region
// entered with one thread allocated one per call, unseen while only malloc was counted).
extern "C" void* __libc_memalign(size_t, size_t);
extern "C" void* memalign(size_t align, size_t n) {
  if (counting.load(std::memory_order_relaxed)) allocations.fetch_add(1);
  return __libc_memalign(align, n);
}
extern "C" void* aligned_alloc(size_t align, size_t n) {
  if (counting.load(std::memory_order_relaxed)) allocations.fetch_add(1);
  return __libc_memalign(align, n);
}
extern "C" int posix_memalign(void** p, size_t align, size_t n) {
  if (counting.load(std::memory_order_relaxed)) allocations.fetch_add(1);
  *p = __libc_memalign(align, n);
  return *p ? 0 : ENOMEM;
}
#endif

using namespace cvnode;

namespace {
template <class F>
long count_allocations(F&& f) {
  allocations = 0;
  counting = true;
  f();
  counting = false;
  return allocations.load();
}
}  // namespace

BOOST_AUTO_TEST_CASE(interposition_works) {
  // Guards the guard: if malloc were not interposed, every count below would be 0 trivially.
  const long n = count_allocations([] {
    Vector v(1000);
    v.setOnes();
    BOOST_TEST(v.sum() == 1000.0);
  });
  BOOST_TEST(n >= 1);
}

BOOST_AUTO_TEST_CASE(mlp_calls_do_not_allocate) {
  for (Activation a : {Activation::Identity, Activation::Tanh, Activation::Relu, Activation::Softplus,
                       Activation::Sigmoid, Activation::Silu, Activation::Elu}) {
    for (std::vector<int> layers : {std::vector<int>{2, 50, 2}, std::vector<int>{16, 256, 256, 16}}) {
      MlpSpec s;
      s.layers = layers;
      s.activation = a;
      s.time_input = layers.size() == 3;
      s.k_diag = Vector::Ones(layers.front());
      const Mlp mlp(s);
      const int n = mlp.state_size(), P = mlp.param_size();
      const Vector theta = mlp.initial_parameters(Init::Glorot, 1);
      const Vector z = test::random_vector(n, 2), v = test::random_vector(n, 3);
      Vector f(n), az(n), ath(P), work(mlp.workspace_size()), none(0);
      Matrix J(n, n);
      const long count = count_allocations([&] {
        mlp.rhs(0.5, z, theta, f, work);
        mlp.vjp(0.5, z, theta, v, az, ath, work);
        mlp.vjp(0.5, z, theta, v, az, none, work);
        mlp.jacobian(0.5, z, theta, J, work);
        mlp.jvp(0.5, z, theta, v, f, work);
      });
      BOOST_TEST(count == 0, activation_name(a) << " layers " << layers.size() << ": " << count << " allocations");
    }
  }
}

BOOST_AUTO_TEST_CASE(stacked_batch_calls_do_not_allocate) {
  // B2's shape: 128 series of a 16-256-256-16 network, where Eigen's blocked GEMM packs its
  // operands (kept on the stack by EIGEN_STACK_ALLOCATION_LIMIT, see CMakeLists.txt); and B1's:
  // 20 series of a 2-50-2 network, whose thin products run as row, column and outer products
  // (src/nn/thin_product.h), some into strided destinations.
  for (auto [layers, copies] : {std::pair{std::vector<int>{16, 256, 256, 16}, 128}, {std::vector<int>{2, 50, 2}, 20}}) {
    MlpSpec s;
    s.layers = layers;
    const Mlp mlp(s);
    const Stacked st(mlp, copies);
    const int n = st.state_size();
    const Vector theta = mlp.initial_parameters(Init::Glorot, 1);
    const Vector z = test::random_vector(n, 2), v = test::random_vector(n, 3);
    Vector f(n), az(n), ath(mlp.param_size()), work(st.workspace_size()), none(0);
    const long count = count_allocations([&] {
      st.rhs(0.5, z, theta, f, work);
      st.vjp(0.5, z, theta, v, az, ath, work);
      st.vjp_again(0.5, z, theta, v, az, ath, work);
      st.vjp(0.5, z, theta, v, az, none, work);
      st.jvp(0.5, z, theta, v, f, work);
    });
    BOOST_TEST(count == 0, "layers " << layers.size() << " x " << copies << ": " << count << " allocations");
  }
}

BOOST_AUTO_TEST_CASE(conv_dynamics_calls_do_not_allocate) {
  // The ODE-Net block as the solver sees a minibatch of images (Stacked), on one and on two
  // OpenMP threads (the thread team exists after the warm-up call), and one image alone.
  for (int threads : {1, 2})
    for (Activation act : {Activation::Relu, Activation::Softplus}) {
      ConvDynamicsSpec s;
      s.channels = 16;
      s.height = s.width = 6;
      s.groups = 4;
      s.activation = act;
      s.threads = threads;
      const ConvDynamics conv(s);
      const Stacked st(conv, 20);
      const int n = st.state_size(), m = conv.state_size();
      const Vector theta = conv.initial_parameters(1);
      const Vector z = test::random_vector(n, 2), v = test::random_vector(n, 3);
      Vector f(n), az(n), ath(conv.param_size()), work(st.workspace_size()), none(0);
      Vector f1(m), az1(m), work1(conv.workspace_size());
      Matrix J(m, m);
      st.rhs(0.5, z, theta, f, work);  // warm-up: OpenMP starts its threads
      const long count = count_allocations([&] {
        st.rhs(0.5, z, theta, f, work);
        st.vjp(0.5, z, theta, v, az, ath, work);
        st.vjp_again(0.5, z, theta, v, az, ath, work);
        st.vjp(0.5, z, theta, v, az, none, work);
        st.jvp(0.5, z, theta, v, f, work);
        conv.rhs(0.5, z.head(m), theta, f1, work1);
        conv.vjp(0.5, z.head(m), theta, v.head(m), az1, ath, work1);
        conv.jvp(0.5, z.head(m), theta, v.head(m), f1, work1);
        conv.jacobian(0.5, z.head(m), theta, J, work1);
      });
      BOOST_TEST(count == 0, threads << " threads, " << activation_name(act) << ": " << count << " allocations");
    }
}

BOOST_AUTO_TEST_CASE(kinetic_energy_does_not_allocate) {
  MlpSpec s;
  s.layers = {3, 32, 3};
  const Mlp mlp(s);
  const KineticEnergy ke(mlp, 0.1);
  const Vector theta = mlp.initial_parameters(Init::Glorot, 1), z = test::random_vector(3, 2);
  Vector dz(3), dth(mlp.param_size()), work(ke.workspace_size());
  const long count = count_allocations([&] {
    ke.value(0.0, z, theta, work);
    ke.gradient(0.0, z, theta, dz, dth, work);
  });
  BOOST_TEST(count == 0);
}
