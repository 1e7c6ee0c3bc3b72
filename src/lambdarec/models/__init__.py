"""Two-stage recommendation models: two-tower retrieval and DeepFM ranking (PyTorch).

``data`` turns an event log into leak-free examples (session features from
:mod:`lambdarec.features.session`), ``two_tower`` and ``deepfm`` hold the networks and
their training loops, ``pipeline`` chains them. PyTorch is imported only by the modules
that need it, never by this package.
"""
