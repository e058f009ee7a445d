"""Runnable notebooks for failures, and the timeline plot they draw."""

from jitchaos._notebook import audit_notebook, plot_timeline, write_notebook

__all__ = ["audit_notebook", "plot_timeline", "write_notebook"]
