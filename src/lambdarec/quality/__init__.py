"""Quality gates: data drift (PSI / KL), Great Expectations validation, and the promotion gate.

Everything here is plain core logic; ``dags/`` and ``expectations/`` only call it.
"""
