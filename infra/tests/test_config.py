"""Stack configuration: the committed stacks validate; a bad value stops preview naming its key."""

from __future__ import annotations

import copy
import runpy
from pathlib import Path
from typing import Any

import pulumi
import pytest
import yaml

from components.config import SECRETS, ConfigError, load_stack_config, looks_secret, read_pulumi_config
from tests.mocks import Recorder

INFRA = Path(__file__).resolve().parents[1]


def _stack_file(stack: str) -> dict[str, Any]:
    return yaml.safe_load((INFRA / f"Pulumi.{stack}.yaml").read_text())["config"]


def _values(config: dict[str, Any]) -> dict[str, Any]:
    return {k.split(":", 1)[1]: v for k, v in config.items() if k.startswith("lambdarec:")}


@pytest.mark.parametrize("stack", ["local", "aws"])
def test_committed_stacks_validate(stack: str) -> None:
    args = load_stack_config(_values(_stack_file(stack)))
    assert args.platform == stack


@pytest.mark.parametrize("stack", ["local", "aws"])
def test_no_secret_in_plain_stack_config(stack: str) -> None:
    def walk(prefix: str, value: Any) -> None:
        if isinstance(value, dict):
            if set(value) == {"secure"}:
                return  # encrypted by Pulumi
            for key, item in value.items():
                walk(f"{prefix}.{key}" if prefix else key, item)
        elif looks_secret(prefix.rsplit(".", 1)[-1].split(":")[-1]):
            raise AssertionError(f"{prefix} holds a plain value in Pulumi.{stack}.yaml; use --secret")

    walk("", _stack_file(stack))
    for key in SECRETS[stack]:
        assert looks_secret(key)
        assert f"lambdarec:{key}" not in _stack_file(stack)


@pytest.mark.parametrize(
    ("change", "key"),
    [
        (lambda c: c["kafka"].update(partitions=0), "lambdarec:kafka.partitions"),
        (lambda c: c["kafka"].update(heap="lots"), "lambdarec:kafka.heap"),
        (lambda c: c["flink"].update(stateBackend="memory"), "lambdarec:flink.stateBackend"),
        (lambda c: c["redis"].update(image="Not An Image"), "lambdarec:redis.image"),
        (lambda c: c["kafka"].update(partitons=4), "lambdarec:kafka.partitons"),
        (lambda c: c.pop("platform"), "lambdarec:platform"),
        (lambda c: c.update(kafak={}), "lambdarec:kafak"),
    ],
)
def test_bad_local_values_name_their_key(change: Any, key: str) -> None:
    values = copy.deepcopy(_values(_stack_file("local")))
    change(values)
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        load_stack_config(values)


@pytest.mark.parametrize(
    ("change", "key"),
    [
        (lambda c: c["aws"].update(vpcId="default"), "lambdarec:aws.vpcId"),
        (lambda c: c["aws"].update(privateSubnetIds=["subnet-0123456789abcdef0"]), "lambdarec:aws.privateSubnetIds"),
        (lambda c: c["aws"].pop("region"), "lambdarec:aws.region"),
        (lambda c: c["airflow"].update(environmentClass="mw1.huge"), "lambdarec:airflow.environmentClass"),
        (lambda c: c["spark"].update(releaseLabel="7.0"), "lambdarec:spark.releaseLabel"),
        (lambda c: c.pop("aws"), "lambdarec:aws"),
    ],
)
def test_bad_aws_values_name_their_key(change: Any, key: str) -> None:
    values = copy.deepcopy(_values(_stack_file("aws")))
    change(values)
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        load_stack_config(values)


def _as_pulumi_config(config: dict[str, Any]) -> dict[str, str]:
    import json

    return {k: v if isinstance(v, str) else json.dumps(v) for k, v in config.items()}


def _run_program(config: dict[str, Any], secrets: dict[str, str]) -> Recorder:
    """Run __main__.py as `pulumi preview` would: config from the stack file, secrets as secrets."""
    recorder = Recorder()
    pulumi.runtime.set_mocks(recorder, project="lambdarec", stack="local", preview=True)
    all_config = {**_as_pulumi_config(config), **{f"lambdarec:{k}": v for k, v in secrets.items()}}
    pulumi.runtime.set_all_config(all_config, [f"lambdarec:{k}" for k in secrets])

    @pulumi.runtime.test
    def run() -> None:
        runpy.run_path(str(INFRA / "__main__.py"), run_name="__main__")

    try:
        run()
    finally:
        pulumi.runtime.set_all_config({}, [])
    return recorder


def test_preview_reads_the_stack_config_and_secrets() -> None:
    recorder = _run_program(_stack_file("local"), {"postgresPassword": "pw-1", "secretKey": "key-1"})
    assert recorder.of_type("docker:index/container:Container")
    assert read_pulumi_config() == {}


def test_preview_stops_on_a_bad_value_naming_the_key() -> None:
    config = copy.deepcopy(_stack_file("local"))
    config["lambdarec:kafka"]["partitions"] = -1
    with pytest.raises(ConfigError, match=r"lambdarec:kafka\.partitions"):
        _run_program(config, {"postgresPassword": "pw-1", "secretKey": "key-1"})


def test_preview_stops_on_a_missing_secret_naming_the_key() -> None:
    with pytest.raises(ConfigError, match=r"lambdarec:postgresPassword.*--secret"):
        _run_program(_stack_file("local"), {"secretKey": "key-1"})
