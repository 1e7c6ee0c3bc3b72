"""lambdarec: a real-time e-commerce recommender on a Lambda architecture.

The core package owns names, event schemas, settings, pure feature logic, models and
evaluation. Adapters (jobs/, features/, bentos/, dags/, infra/) import it; it imports none
of them.
"""

__version__ = "0.1.0"
