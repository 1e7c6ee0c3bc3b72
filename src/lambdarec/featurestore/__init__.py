"""The Feast feature store: apply the repo in ``features/``, materialize, read online features."""
