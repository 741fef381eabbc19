"""Repository rules that find the system libraries this project builds against.

In the manner of TensorFlow's `*_configure.bzl` rules, each rule probes the standard
Debian locations (or asks the library's own discovery tool: pkg-config, mpicc) and
accepts an environment override that points at another install:

  LIBTORCH_HOME  a libtorch tree with include/ and lib/ (e.g. a CUDA build of libtorch 2.x)
  MPI_HOME       an MPI install with include/ and lib/
  HDF5_HOME      a *parallel* HDF5 install with include/ and lib/
  CUDA_HOME      the CUDA toolkit (default /usr/local/cuda)
  NCCL_HOME      NCCL, if it is not inside CUDA_HOME

Headers outside /usr/include are symlinked into the generated repository and declared,
so Bazel's inclusion checks hold. Libraries are linked by -L/-l with an rpath, so a
binary runs without LD_LIBRARY_PATH. A missing library fails the fetch with a message
that names the fix, except CUDA/NCCL: when they are absent an empty stub is emitted so
that `bazel query //...` always works, and only `--config=cuda` builds report the error.
"""

_SETUP_HINT = "Run scripts/setup.sh, which installs every Debian package the build needs"

def _exists(ctx, path):
    return ctx.path(path).exists

def _first_existing(ctx, candidates):
    for c in candidates:
        if c and _exists(ctx, c):
            return c
    return None

def _run(ctx, args):
    result = ctx.execute(args)
    if result.return_code != 0:
        return None
    return result.stdout.strip()

def _symlink_include_dirs(ctx, dirs):
    """Symlinks each include dir into the repo; returns the repo-relative names."""
    names = []
    for i, d in enumerate(dirs):
        if d in ("/usr/include", "/usr/local/include"):
            continue  # Toolchain built-in directories: no declaration needed.
        name = "include_%d" % i
        ctx.symlink(d, name)
        names.append(name)
    return names

def _library_build(name, include_names, linkopts, defines = [], extra_includes = [], extra = ""):
    hdrs = ", ".join(['"%s/**"' % n for n in include_names])
    includes = include_names + extra_includes
    return """
cc_library(
    name = "{name}",
    hdrs = glob([{hdrs}], allow_empty = True),
    includes = {includes},
    defines = {defines},
    linkopts = {linkopts},
    visibility = ["//visibility:public"],
)
{extra}""".format(
        name = name,
        hdrs = hdrs,
        includes = repr(includes),
        defines = repr(defines),
        linkopts = repr(linkopts),
        extra = extra,
    )

def _lib_linkopts(libdirs, libs, no_as_needed = False):
    opts = []
    for d in libdirs:
        if d not in ("/usr/lib", "/usr/lib/x86_64-linux-gnu", "/lib/x86_64-linux-gnu"):
            opts += ["-L" + d, "-Wl,-rpath," + d]
    if no_as_needed:
        # libtorch registers its operators (and CUDA backends) in static
        # initialisers; the libraries must stay linked even if no symbol is used.
        opts.append("-Wl,--no-as-needed")
    opts += ["-l" + l for l in libs]
    if no_as_needed:
        opts.append("-Wl,--as-needed")
    return opts

def _split_pkg_config(ctx, modules, what):
    cflags = _run(ctx, ["pkg-config", "--cflags"] + modules)
    libs = _run(ctx, ["pkg-config", "--libs"] + modules)
    if cflags == None or libs == None:
        fail("%s not found by pkg-config (modules: %s). %s." % (what, " ".join(modules), _SETUP_HINT))
    incdirs = []
    defines = []
    for f in cflags.split(" "):
        if f.startswith("-I"):
            incdirs.append(f[2:])
        elif f.startswith("-D"):
            defines.append(f[2:])
    linkopts = [f for f in libs.split(" ") if f]
    return incdirs, defines, linkopts

# ----------------------------------------------------------------------------- libtorch

def _torch_version(ctx, version_h):
    content = ctx.read(version_h)
    major = "0"
    minor = "0"
    for line in content.splitlines():
        parts = line.split(" ")
        if len(parts) >= 3 and parts[0] == "#define":
            if parts[1] == "TORCH_VERSION_MAJOR":
                major = parts[2]
            elif parts[1] == "TORCH_VERSION_MINOR":
                minor = parts[2]
    return major, minor

def _torch_configure_impl(ctx):
    home = ctx.os.environ.get("LIBTORCH_HOME", "")
    api = "torch/csrc/api/include"
    if home:
        if not _exists(ctx, home + "/include/" + api + "/torch/torch.h"):
            fail("LIBTORCH_HOME=%s is not a libtorch install: %s/include/%s/torch/torch.h is missing. " % (home, home, api) +
                 "Point LIBTORCH_HOME at the unpacked libtorch directory (it holds include/ and lib/).")
        ctx.symlink(home + "/include", "include")
        libdir = home + "/lib"
    else:
        if not _exists(ctx, "/usr/include/" + api + "/torch/torch.h"):
            fail("libtorch not found in /usr/include. %s (libtorch-dev), or set LIBTORCH_HOME." % _SETUP_HINT)
        for d in ["ATen", "c10", "caffe2", "torch"]:
            if _exists(ctx, "/usr/include/" + d):
                ctx.symlink("/usr/include/" + d, "include/" + d)
        libdir = _first_existing(ctx, ["/usr/lib/x86_64-linux-gnu", "/usr/lib64", "/usr/lib"])
    if not _exists(ctx, libdir + "/libtorch.so"):
        fail("libtorch.so not found in %s. %s, or set LIBTORCH_HOME." % (libdir, _SETUP_HINT))
    major, minor = _torch_version(ctx, "include/" + api + "/torch/version.h")
    libs = ["torch", "torch_cpu", "c10"]
    has_cuda = _exists(ctx, libdir + "/libtorch_cuda.so")
    if has_cuda:
        libs += ["torch_cuda", "c10_cuda"]
    linkopts = _lib_linkopts([libdir], libs, no_as_needed = True)
    build = _library_build(
        "torch",
        ["include"],
        linkopts,
        extra_includes = ["include/" + api],
    )
    ctx.file("BUILD.bazel", build)
    ctx.file("version.bzl", "TORCH_VERSION = (%s, %s)\nTORCH_HAS_CUDA = %s\nTORCH_LIBDIR = %r\n" % (
        major,
        minor,
        "True" if has_cuda else "False",
        libdir,
    ))

torch_configure = repository_rule(
    implementation = _torch_configure_impl,
    environ = ["LIBTORCH_HOME"],
    local = True,
)

# ----------------------------------------------------------------------------- MPI

def _mpi_configure_impl(ctx):
    home = ctx.os.environ.get("MPI_HOME", "")
    if home:
        if not _exists(ctx, home + "/include/mpi.h"):
            fail("MPI_HOME=%s has no include/mpi.h. Point MPI_HOME at an MPI install." % home)
        incdirs = [home + "/include"]
        libdirs = [home + "/lib"]
        libs = ["mpi"]
    else:
        incs = _run(ctx, ["mpicc", "--showme:incdirs"])
        if not incs:
            fail("mpicc not found, so Open MPI cannot be located. %s (libopenmpi-dev), or set MPI_HOME." % _SETUP_HINT)
        incdirs = incs.split(" ")
        libdirs = (_run(ctx, ["mpicc", "--showme:libdirs"]) or "").split(" ")
        libs = (_run(ctx, ["mpicc", "--showme:libs"]) or "mpi").split(" ")

    # Open MPI's subdirectories (include/openmpi) sit below the first include dir, so
    # one symlink covers all of them.
    root = incdirs[0]
    names = _symlink_include_dirs(ctx, [root])
    extra = []
    for d in incdirs[1:]:
        if d.startswith(root + "/"):
            extra.append(names[0] + d[len(root):])
    build = _library_build(
        "mpi",
        names,
        _lib_linkopts([d for d in libdirs if d], [l for l in libs if l]),
        defines = ["OMPI_SKIP_MPICXX=1", "MPICH_SKIP_MPICXX=1"],
        extra_includes = extra,
    )
    ctx.file("BUILD.bazel", build)

mpi_configure = repository_rule(
    implementation = _mpi_configure_impl,
    environ = ["MPI_HOME", "PATH"],
    local = True,
)

# ----------------------------------------------------------------------------- HDF5

def _hdf5_configure_impl(ctx):
    home = ctx.os.environ.get("HDF5_HOME", "")
    if home:
        incdir = home + "/include"
        libdir = home + "/lib"
    else:
        incdir = _first_existing(ctx, ["/usr/include/hdf5/openmpi"])
        libdir = _first_existing(ctx, ["/usr/lib/x86_64-linux-gnu/hdf5/openmpi"])
        if not incdir or not libdir:
            fail("Parallel HDF5 (openmpi build) not found in /usr/include/hdf5/openmpi. " +
                 "%s (libhdf5-openmpi-dev), or set HDF5_HOME." % _SETUP_HINT)
    if not _exists(ctx, incdir + "/hdf5.h"):
        fail("%s/hdf5.h is missing. Set HDF5_HOME to a parallel HDF5 install." % incdir)
    conf = ctx.read(incdir + "/H5pubconf.h")
    if "#define H5_HAVE_PARALLEL 1" not in conf:
        fail("HDF5 at %s is a serial build; this project needs parallel HDF5 (MPI-IO). " % incdir +
             "Install libhdf5-openmpi-dev or point HDF5_HOME at a parallel build.")
    names = _symlink_include_dirs(ctx, [incdir])
    ctx.file("BUILD.bazel", _library_build(
        "hdf5",
        names,
        _lib_linkopts([libdir], ["hdf5"]),
    ))

hdf5_configure = repository_rule(
    implementation = _hdf5_configure_impl,
    environ = ["HDF5_HOME"],
    local = True,
)

# ----------------------------------------------------------------------------- pkg-config

def _pkg_config_library_impl(ctx):
    build = ""
    for target, modules in ctx.attr.targets.items():
        incdirs, defines, linkopts = _split_pkg_config(ctx, modules, ctx.attr.what)
        names = _symlink_include_dirs(ctx, incdirs)
        build += _library_build(target, names, linkopts, defines = defines)
    ctx.file("BUILD.bazel", build)

pkg_config_library = repository_rule(
    implementation = _pkg_config_library_impl,
    attrs = {
        "targets": attr.string_list_dict(doc = "cc_library name -> pkg-config modules"),
        "what": attr.string(doc = "human name, for error messages"),
    },
    environ = ["PKG_CONFIG_PATH"],
    local = True,
)

# ----------------------------------------------------------------------------- header-only

def _system_headers_impl(ctx):
    for h in ctx.attr.headers:
        if not _exists(ctx, "/usr/include/" + h):
            fail("/usr/include/%s not found: %s is missing. %s (%s)." % (h, ctx.attr.what, _SETUP_HINT, ctx.attr.what))
    ctx.file("BUILD.bazel", _library_build(ctx.attr.target, [], []))

system_headers = repository_rule(
    implementation = _system_headers_impl,
    attrs = {
        "target": attr.string(doc = "the cc_library's name"),
        "headers": attr.string_list(doc = "headers under /usr/include that must exist"),
        "what": attr.string(doc = "human name and Debian package, for error messages"),
    },
    local = True,
)

# ----------------------------------------------------------------------------- protoc

def _protobuf_configure_impl(ctx):
    """libprotobuf (pkg-config) and the protoc of the same release, which generated code needs."""
    incdirs, defines, linkopts = _split_pkg_config(ctx, ["protobuf"], "Protocol Buffers (libprotobuf-dev)")
    library_version = _run(ctx, ["pkg-config", "--modversion", "protobuf"]) or "?"
    protoc = ctx.which("protoc")
    if not protoc:
        fail("protoc not found on PATH. %s (protobuf-compiler)." % _SETUP_HINT)
    compiler_version = (_run(ctx, [str(protoc), "--version"]) or "?").replace("libprotoc ", "")

    # Code generated by one protobuf release only compiles against the same release's headers.
    # (protoc 3.21.x goes with libprotobuf 3.21.x; protoc 25.x with libprotobuf 4.25.x.)
    c = compiler_version.split(".")[:2]
    lib = library_version.split(".")
    if c != lib[:2] and c != lib[1:3]:
        fail("protoc %s (%s) does not match libprotobuf %s: generated code would not compile. " % (
            compiler_version,
            protoc,
            library_version,
        ) + "Install the protobuf-compiler that matches libprotobuf-dev, or put the matching protoc first on PATH.")
    ctx.symlink(protoc, "protoc")

    # gRPC's C++ code generator (protobuf-compiler-grpc), for the inference client's stubs. Its
    # absence fails only the targets that generate stubs, naming the package.
    plugin = ctx.which("grpc_cpp_plugin")
    if plugin:
        ctx.symlink(plugin, "grpc_cpp_plugin")
    else:
        ctx.file("grpc_cpp_plugin", "#!/bin/sh\necho 'grpc_cpp_plugin not found on PATH. %s (protobuf-compiler-grpc).' >&2\nexit 1\n" % _SETUP_HINT, executable = True)
    names = _symlink_include_dirs(ctx, incdirs)
    ctx.file("BUILD.bazel", _library_build("protobuf", names, linkopts, defines = defines) + """
exports_files(["protoc", "grpc_cpp_plugin"])
""")

protobuf_configure = repository_rule(
    implementation = _protobuf_configure_impl,
    environ = ["PATH", "PKG_CONFIG_PATH"],
    local = True,
)

# ----------------------------------------------------------------------------- CUDA + NCCL

_CUDA_STUB = """
# CUDA or NCCL was not found when this repository was generated ({why}).
# `bazel query //...` works; a `--config=cuda` build fails here with this message.
genrule(
    name = "cuda_missing",
    outs = ["cuda_missing.h"],
    cmd = "echo 'CUDA/NCCL not found: {why}. Install the CUDA toolkit and NCCL, or set CUDA_HOME / NCCL_HOME, then re-run bazel.' >&2; exit 1",
)

cc_library(name = "cuda", hdrs = [":cuda_missing.h"], visibility = ["//visibility:public"])

cc_library(name = "nccl", hdrs = [":cuda_missing.h"], visibility = ["//visibility:public"])
"""

def _cuda_configure_impl(ctx):
    cuda = ctx.os.environ.get("CUDA_HOME", "") or _first_existing(ctx, ["/usr/local/cuda", "/opt/cuda"])
    nccl = ctx.os.environ.get("NCCL_HOME", "") or cuda
    why = ""
    if not cuda:
        why = "no CUDA_HOME and no /usr/local/cuda"
    elif not _exists(ctx, cuda + "/include/cuda_runtime.h"):
        why = "%s/include/cuda_runtime.h is missing" % cuda
    elif not _exists(ctx, nccl + "/include/nccl.h"):
        why = "%s/include/nccl.h is missing" % nccl
    if why:
        ctx.file("BUILD.bazel", _CUDA_STUB.format(why = why))
        ctx.file("defs.bzl", "CUDA_FOUND = False\n")
        return
    cuda_lib = _first_existing(ctx, [cuda + "/lib64", cuda + "/lib", cuda + "/targets/x86_64-linux/lib"])
    nccl_lib = _first_existing(ctx, [nccl + "/lib64", nccl + "/lib", cuda_lib])
    ctx.symlink(cuda + "/include", "cuda_include")
    build = _library_build("cuda", ["cuda_include"], _lib_linkopts([cuda_lib], ["cudart"]))
    if nccl == cuda:
        build += """
cc_library(
    name = "nccl",
    linkopts = {linkopts},
    deps = [":cuda"],
    visibility = ["//visibility:public"],
)
""".format(linkopts = repr(_lib_linkopts([nccl_lib], ["nccl"])))
    else:
        ctx.symlink(nccl + "/include", "nccl_include")
        build += _library_build("nccl_headers", ["nccl_include"], [])
        build += """
cc_library(
    name = "nccl",
    linkopts = {linkopts},
    deps = [":cuda", ":nccl_headers"],
    visibility = ["//visibility:public"],
)
""".format(linkopts = repr(_lib_linkopts([nccl_lib], ["nccl"])))
    ctx.file("BUILD.bazel", build)
    ctx.file("defs.bzl", "CUDA_FOUND = True\nCUDA_HOME = %r\n" % cuda)

cuda_configure = repository_rule(
    implementation = _cuda_configure_impl,
    environ = ["CUDA_HOME", "NCCL_HOME"],
    local = True,
)
