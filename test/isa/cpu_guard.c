/* The guard of a test built for one instruction set (test/CMakeLists.txt, the ISA variants): on a
 * CPU without that set the test would die of SIGILL, so before any other constructor runs it
 * says why and exits with 77, which CTest reports as a skip. This file is compiled without the
 * variant's -march flag, so the check itself runs on any x86-64. */
#include <stdio.h>
#include <stdlib.h>

__attribute__((constructor(101))) static void cvnode_cpu_guard(void) {
  __builtin_cpu_init();
  int ok = 1;
  const char* needs = "";
#if defined(CVNODE_NEEDS_AVX512)
  needs = "AVX-512 (F, DQ, BW, VL)";
  ok = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512dq") &&
       __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512vl");
#elif defined(CVNODE_NEEDS_AVX2)
  needs = "AVX2 and FMA";
  ok = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
#endif
  if (!ok) {
    printf("skipped: this test is built for %s, which this CPU does not have\n", needs);
    fflush(stdout);
    _Exit(77);
  }
}
