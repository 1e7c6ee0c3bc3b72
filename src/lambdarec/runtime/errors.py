"""Errors of the embedded runtime, each saying what to do about it."""


class RuntimeServiceError(RuntimeError):
    """A service could not be started, found or stopped."""


class PrerequisiteError(RuntimeServiceError):
    """A tool the runtime needs (JDK, Maven, resolved jars) is missing; the message says how to fix it."""


class ServiceNotRunningError(RuntimeServiceError):
    """A client asked for an embedded service that is not up."""
