"""Multi-trial search (``trainpilot tune``): Optuna studies whose trials are normal trainpilot runs,
with the tuning controller inside every trial. See :mod:`trainpilot.search.study`."""
