"""Two-stage recommendation models: two-tower retrieval and DeepFM ranking (PyTorch).

``inputs`` is the one assembly of model inputs from feature-service rows, ``sources`` reads
those rows (offline point in time for training, online for serving), ``data`` builds the
examples and the temporal split from them, ``two_tower`` and ``deepfm`` hold the networks and
their training loops, ``pipeline`` chains them, ``bundle`` saves and loads what serving needs.
PyTorch is imported only by the modules that need it, never by this package.
"""
