# SPDX-License-Identifier: Apache-2.0
"""Fixtures of the observability suite: tests/observability/prom.py on the
import path (next to tests/lib, which tests/conftest.py adds)."""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
