"""The speed layer's core side: the pusher to the online store, the services, the CLI.

The PyFlink job itself lives in ``jobs/flink/`` (its own environment); this package runs
in the main environment and starts that job as a subprocess, never importing it.
"""
