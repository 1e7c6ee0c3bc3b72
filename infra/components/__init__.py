"""Components of the lambdarec Pulumi program.

Each is ``XArgs`` (a pydantic model from :mod:`components.config`) plus ``X(pulumi.ComponentResource)``:
children are created with ``parent=self`` and the component ends with ``register_outputs``.
:mod:`components.local` declares the services as Docker containers, :mod:`components.aws` as
managed AWS services and Kubernetes workloads; both wire ports, environment variables and start
order from :mod:`lambdarec.runtime.topology`, the description ``lambdarec services`` runs from.
"""
