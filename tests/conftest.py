"""Test-wide settings: Hypothesis profiles.

``ci`` (the default) is derandomized so a run is reproducible and its time is bounded;
``thorough`` explores more and randomly: ``HYPOTHESIS_PROFILE=thorough pytest tests/``.
"""

from __future__ import annotations

import os

from hypothesis import HealthCheck, settings

settings.register_profile(
    "ci",
    max_examples=60,
    derandomize=True,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.register_profile("thorough", max_examples=1000, deadline=None)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))
