"""From the topology to resource arguments: environment, ports and start order.

Both stacks call :func:`service_env` for every service they declare, so the variables a
service receives are always the ones :mod:`lambdarec.runtime.topology` says its dependencies
give; only the *values* differ by platform (a container name on the Docker network, a managed
endpoint in the cloud).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import pulumi

from lambdarec.runtime import topology

#: The checkout this program lives in (infra/..): Docker build contexts are relative to it.
REPO_ROOT = Path(__file__).resolve().parents[2]


def service_env(
    name: str,
    *,
    overrides: Mapping[str, Mapping[str, pulumi.Input[str]]] | None = None,
    hosts: Mapping[str, pulumi.Input[str]] | None = None,
    extra: Mapping[str, pulumi.Input[str]] | None = None,
) -> dict[str, pulumi.Input[str]]:
    """The environment of one service.

    Args:
        name: A topology service name.
        overrides: Per dependency, the values of its client variables when a managed resource
            provides them (``{"kafka": {"LAMBDAREC_KAFKA__BOOTSTRAP_SERVERS": msk.bootstrap_brokers}}``).
            Only variables the topology declares for that dependency are accepted.
        hosts: Per dependency, the host its templates are filled with (default: the service name);
            an Output (a managed resource's address) is filled in when it resolves.
        extra: Platform variables of the service itself (``LAMBDAREC_ENV``, secrets).

    Returns:
        ``{variable: value}``: the service's own ``env``, its dependencies' client variables, ``extra``.

    Raises:
        ValueError: An override names a variable the dependency does not give.
    """
    spec = topology.service(name)
    env: dict[str, pulumi.Input[str]] = dict(spec.env)
    for dep in spec.depends_on:
        dep_spec = topology.service(dep)
        host = (hosts or {}).get(dep, dep)
        values: dict[str, pulumi.Input[str]]
        if isinstance(host, str):
            values = dict(dep_spec.endpoints(host))
        else:
            values = {var: _filled(dep_spec, host, var) for var in dep_spec.client_env}
        given = (overrides or {}).get(dep, {})
        unknown = set(given) - set(dep_spec.client_env)
        if unknown:
            raise ValueError(f"{dep} gives no {sorted(unknown)}; its client variables: {sorted(dep_spec.client_env)}")
        values.update(given)
        env.update(values)
    env.update(extra or {})
    return env


def _filled(spec: topology.Service, host: pulumi.Input[str], variable: str) -> pulumi.Output[str]:
    """One client variable of ``spec`` once ``host`` (a managed resource's address) resolves."""

    def fill(resolved: str) -> str:
        return spec.endpoints(resolved)[variable]

    return pulumi.Output.from_input(host).apply(fill)


def env_list(env: Mapping[str, pulumi.Input[str]]) -> pulumi.Output[list[str]]:
    """``KEY=value`` strings for a container; secret when any value is a secret."""
    keys = sorted(env)
    return pulumi.Output.all(*[env[k] for k in keys]).apply(
        lambda values: [f"{k}={v}" for k, v in zip(keys, values, strict=True)]
    )


def start_order() -> list[str]:
    """Topology service names, each after everything it depends on."""
    return [s.name for s in topology.SERVICES]
