"""Runnable notebooks for failures, and the timeline plot they draw."""

from jitchaos._failure import repro_notebook, write_repro
from jitchaos._notebook import audit_notebook, plot_timeline, replay_lines, write_notebook
from jitchaos._repro import Repro, load_failure

__all__ = [
    "Repro",
    "audit_notebook",
    "load_failure",
    "plot_timeline",
    "replay_lines",
    "repro_notebook",
    "write_notebook",
    "write_repro",
]
