#!/usr/bin/env bash
# Runs triton_example_test.py with Debian's Python (numpy).
exec /usr/bin/python3 scripts/reward_server/triton_example_test.py
