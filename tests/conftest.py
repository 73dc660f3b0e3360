import os
import sys

import pytest
import torch
from hypothesis import HealthCheck, settings

# "default" for the suite; "fuzz" (HYPOTHESIS_PROFILE=fuzz) for the long run of benchmarks/fuzz.py.
settings.register_profile("default", max_examples=100, deadline=None)
settings.register_profile(
    "fuzz", max_examples=5000, deadline=None, database=None, suppress_health_check=list(HealthCheck)
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)


@pytest.fixture(scope="session")
def oracle():
    """A small oracle setting shared by the invariant tests (48 test patches, 16x16 grid)."""
    from differential.oracle.benchmark import Protocol, Setup

    torch.set_num_threads(1)
    return Protocol(Setup(tests=48, references=128, bootstrap=200))
