"""Declares every system library repository the project builds against."""

load(
    "//third_party:system_configure.bzl",
    "cuda_configure",
    "hdf5_configure",
    "mpi_configure",
    "pkg_config_library",
    "protobuf_configure",
    "system_headers",
    "torch_configure",
)

def dancegrpo_system_dependencies():
    torch_configure(name = "libtorch")
    mpi_configure(name = "mpi")
    hdf5_configure(name = "hdf5")
    cuda_configure(name = "local_config_cuda")
    pkg_config_library(
        name = "system_absl",
        what = "Abseil (libabsl-dev)",
        targets = {
            "absl": [
                "absl_status",
                "absl_statusor",
                "absl_strings",
                "absl_str_format",
                "absl_time",
                "absl_synchronization",
                "absl_hash",
                "absl_raw_hash_set",
            ],
        },
    )
    pkg_config_library(
        name = "system_glog_gflags",
        what = "glog and gflags (libgoogle-glog-dev, libgflags-dev)",
        targets = {
            "glog": ["libglog"],
            "gflags": ["gflags"],
        },
    )
    pkg_config_library(
        name = "system_images",
        what = "libjpeg-turbo, libpng and giflib (libjpeg62-turbo-dev, libpng-dev, libgif-dev)",
        targets = {
            "jpeg": ["libjpeg"],
            "png": ["libpng"],
            "gif": ["libgif"],
        },
    )
    pkg_config_library(
        name = "system_av",
        what = "FFmpeg's libavformat, libavcodec, libavutil and libswscale (libavformat-dev, libavcodec-dev, libswscale-dev)",
        targets = {
            "av": ["libavformat", "libavcodec", "libavutil", "libswscale"],
        },
    )
    protobuf_configure(name = "system_protobuf")
    pkg_config_library(
        name = "system_grpc",
        what = "gRPC C++ (libgrpc++-dev)",
        targets = {"grpcpp": ["grpc++"]},
    )
    system_headers(
        name = "system_boost",
        target = "boost",
        headers = ["boost/crc.hpp"],
        what = "Boost headers (libboost-dev)",
    )
    pkg_config_library(
        name = "system_json",
        what = "nlohmann JSON (nlohmann-json3-dev)",
        targets = {"json": ["nlohmann_json"]},
    )
    pkg_config_library(
        name = "system_gtest",
        what = "GoogleTest (libgtest-dev, libgmock-dev)",
        targets = {
            "gtest": ["gtest", "gmock"],
            "gtest_main": ["gtest_main", "gmock"],
        },
    )
