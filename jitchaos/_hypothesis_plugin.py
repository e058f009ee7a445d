"""Hypothesis entry point: ``st.from_type`` builds valid faults once Hypothesis is imported."""

from __future__ import annotations

import sys


def _register() -> None:
    errors = sys.modules.get("jitchaos.errors")
    if errors is not None and not hasattr(errors, "InvalidArgument"):
        # jitchaos itself is importing Hypothesis right now; jitchaos.faults registers the
        # strategies at the end of its own import instead.
        return
    from jitchaos.strategies._faults import register_types

    register_types()
