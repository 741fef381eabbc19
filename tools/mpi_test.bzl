"""mpi_test: a GoogleTest binary run under `mpirun -np N`, as a Bazel test.

    mpi_test(
        name = "allreduce_test",
        srcs = ["allreduce_test.cc"],
        deps = [...],
        np = [2, 4],          # one test target per rank count: allreduce_test_np2, _np4
    )

The binary links //tests:mpi_gtest_main, which initialises MPI, keeps the XML report to
rank 0, prints every rank's failures with its rank, and makes every rank exit non-zero
when any rank failed. The runner (tools/mpi_test_runner.sh) works as root, sets HOME,
oversubscribes the cores, tags each output line with its rank, and kills the job before
Bazel's own timeout so that a rank stuck in a collective is reported, not hung.
Targets are tagged "mpi" (filter with --test_tag_filters=-mpi) and "np<N>".
"""

def mpi_test(name, srcs, deps = [], np = [2], size = "medium", tags = [], data = [], args = [], **kwargs):
    binary = name + "_bin"
    native.cc_binary(
        name = binary,
        srcs = srcs,
        deps = deps + ["//tests:mpi_gtest_main"],
        testonly = True,
        **kwargs
    )
    tests = []
    for n in np:
        test_name = "%s_np%d" % (name, n)
        native.sh_test(
            name = test_name,
            srcs = ["//tools:mpi_test_runner.sh"],
            args = [str(n), "$(location :%s)" % binary] + args,
            data = [":" + binary] + data,
            size = size,
            tags = tags + ["mpi", "np%d" % n],
        )
        tests.append(":" + test_name)
    native.test_suite(name = name, tests = tests, tags = tags + ["mpi"])
