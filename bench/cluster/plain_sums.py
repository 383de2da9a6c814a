#!/usr/bin/env python3
"""Rewrites src/parallel/exact_sum.cpp (path as the argument, in place) into the benchmark-only
variant whose ExactSum is a plain double sum: add(vector) is `d[i] += x[i]` over one double per
element, cells merge and read as doubles. Not reproducible across threads or ranks; only for
bench/cluster/exact_sum.sh's comparison. Build it in its own build folder and restore the file:
    python3 bench/cluster/plain_sums.py src/parallel/exact_sum.cpp
    cmake -S . -B build-plain -DCMAKE_BUILD_TYPE=Release && cmake --build build-plain --target cvnode_cli
    git checkout src/parallel/exact_sum.cpp
"""
import sys

path = sys.argv[1]
s = open(path).read()
edits = {
    "void ExactSum::add_cell(Cell& c, double x) {\n":
        "  { double d; std::memcpy(&d, &c.w[0], 8); d += x; std::memcpy(&c.w[0], &d, 8); c.top = 0; return; }\n",
    "void ExactSum::merge_cell(Cell& into, const Cell& from) {\n":
        "  { double a, b; std::memcpy(&a, &into.w[0], 8); std::memcpy(&b, &from.w[0], 8); a += b;"
        " std::memcpy(&into.w[0], &a, 8); into.top = 0; return; }\n",
    "double ExactSum::cell_value(const Cell& c) {\n":
        "  { double d; std::memcpy(&d, &c.w[0], 8); return d; }\n",
    "void ExactSum::add(const double* x, Eigen::Index n, Eigen::Index offset) {\n":
        "  { auto* d = reinterpret_cast<double*>(w0_.data()) + offset;\n"
        "    for (Eigen::Index i = 0; i < n; ++i) d[i] += x[i];\n"
        "    return; }\n",
}
for head, body in edits.items():
    if head not in s:
        sys.exit(f"plain_sums.py: {path} has no `{head.strip()}`")
    s = s.replace(head, head + body, 1)
open(path, "w").write("// BENCHMARK VARIANT (bench/cluster/plain_sums.py): plain double sums\n" + s)
