#!/bin/sh
echo "remote_coverage_tools is an offline shim: bazel coverage is not available in this build." >&2
exit 1
