"""The embedded Milvus: the real standalone server shipped in the PyPI ``milvus`` wheel.

The wheel carries a Linux build of ``milvus`` (v2.3.5) and its shared libraries as
``.lzma`` files, plus a ``milvus.yaml`` template. We unpack the binaries once into a
shared cache, render the configuration ourselves (every port chosen by the supervisor,
all data under the service's data folder) and run ``milvus run standalone`` in the
foreground: one process holding the coordinators, the nodes, an embedded etcd
(metadata) and RocksMQ (log broker), storing segments on the local disk. We do not use
the wheel's ``MilvusServer`` wrapper: it keeps the server as a child of a Python
process, picks ports by itself and writes under ``~/.milvus.io``.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from lambdarec.names import MILVUS_SERVICE
from lambdarec.runtime.service import ManagedService
from lambdarec.runtime.topology import MILVUS

# The component ports of one standalone server, in the names of the wheel's template.
# Coordinators and nodes talk to each other over gRPC even inside one process, so
# each needs its own port; two state folders must never share one.
_COMPONENT_PORTS: dict[str, str] = {
    "proxy_internal_port": "proxy",
    "root_coord_port": "rootCoord",
    "query_coord_port": "queryCoord",
    "query_node_port": "queryNode",
    "index_node_port": "indexNode",
    "data_coord_port": "dataCoord",
    "data_node_port": "dataNode",
}

_PLACEHOLDER = re.compile(r"\{\{(.*?)\}\}")


def milvus_package_dir() -> Path:
    """The installed ``milvus`` wheel's folder, found without importing it.

    Importing ``milvus`` builds two server objects at import time; we only need its data.

    Raises:
        PrerequisiteError: The wheel is not installed.
    """
    from importlib.util import find_spec

    from lambdarec.runtime.errors import PrerequisiteError

    spec = find_spec("milvus")
    if spec is None or not spec.submodule_search_locations:
        raise PrerequisiteError("the `milvus` wheel is not installed: run `make setup` (uv sync --extra runtime)")
    return Path(next(iter(spec.submodule_search_locations)))


def milvus_version() -> str:
    """The version of the installed ``milvus`` wheel (it is the server's version)."""
    from importlib.metadata import version

    return version("milvus")


def binaries_dir() -> Path:
    """Where the unpacked server binaries live, shared by every state folder.

    The binaries are ~250 MB unpacked; one copy per version is enough, so they go to the
    checkout's ``.cache`` (beside the Kafka jars) or, outside a checkout, the user cache.
    """
    from lambdarec.settings import find_project_root

    root = find_project_root()
    base = root / ".cache" if root is not None else Path.home() / ".cache" / "lambdarec"
    return base / "milvus" / milvus_version() / "bin"


def unpack_binaries(target: Path | None = None) -> Path:
    """Decompress the wheel's ``data/bin/*.lzma`` into ``target`` once (idempotent).

    Each file is written beside its final name and renamed into place, and a checksum
    marker is written last, so a concurrent or interrupted unpack never leaves a
    half-written library behind that a later start would trust.

    Args:
        target: Destination folder; defaults to :func:`binaries_dir`.

    Returns:
        The folder holding the ``milvus`` executable and its libraries.
    """
    import hashlib
    import lzma
    import shutil

    bin_dir = target or binaries_dir()
    bin_dir.mkdir(parents=True, exist_ok=True)
    source_dir = milvus_package_dir() / "data" / "bin"
    for packed in sorted(source_dir.glob("*.lzma")):
        name = packed.name.removesuffix(".lzma")
        marker = bin_dir / f"{name}.md5"
        digest = hashlib.md5(packed.read_bytes(), usedforsecurity=False).hexdigest()
        if (bin_dir / name).is_file() and marker.is_file() and marker.read_text().strip() == digest:
            continue
        partial = bin_dir / f"{name}.{os.getpid()}.part"
        with lzma.open(packed, "rb") as src, partial.open("wb") as dst:
            shutil.copyfileobj(src, dst, length=4 * 2**20)
        partial.chmod(0o755)
        os.replace(partial, bin_dir / name)
        marker.write_text(digest)
    return bin_dir


class MilvusService(ManagedService):
    """A Milvus 2.3 standalone server with embedded etcd, RocksMQ and local storage."""

    name = MILVUS_SERVICE
    # The topology's "port" (gRPC/REST, clients) and "http_port" (/healthz, metrics), then the
    # ports a container keeps inside itself: the embedded etcd's and each component's.
    port_names = (*MILVUS.port_names, "etcd_port", "etcd_peer_port", *_COMPONENT_PORTS)
    startup_timeout_s = 120.0
    stop_timeout_s = 30.0

    #: Seconds Milvus waits for its own graceful stop before it exits anyway. Shorter
    #: than ``stop_timeout_s`` so the server finishes by itself before the supervisor's
    #: SIGKILL (etcd and RocksMQ are durable either way; this only keeps logs clean).
    graceful_stop_s = 20
    #: etcd lease of each component's session, in seconds (Milvus default 30).
    session_ttl_s = 10

    def configured_ports(self) -> Mapping[str, int]:
        """The client port pinned in settings (0 = pick a free one)."""
        return {"port": self.settings.milvus.port}

    def check_prerequisites(self) -> None:
        """Fail fast when the wheel, or its Linux binaries, are missing."""
        import sys

        from lambdarec.runtime.errors import PrerequisiteError

        if not sys.platform.startswith("linux"):
            raise PrerequisiteError(
                "the embedded Milvus runs on Linux only; set LAMBDAREC_MILVUS__URI to a Milvus server "
                "(e.g. `docker run milvusdb/milvus:v2.3.5 milvus run standalone`)"
            )
        if not (milvus_package_dir() / "data" / "bin" / "milvus.lzma").is_file():
            raise PrerequisiteError("the `milvus` wheel has no server binary; reinstall it (`make setup`)")

    @property
    def conf_dir(self) -> Path:
        """Generated ``milvus.yaml``, ``glog.conf`` and ``embed_etcd.yaml``."""
        return self.home / "conf"

    @property
    def executable(self) -> Path:
        """The unpacked ``milvus`` binary."""
        return binaries_dir() / "milvus"

    def milvus_config(self, ports: Mapping[str, int]) -> dict[str, Any]:
        """The server configuration: the wheel's template with our ports, paths and limits.

        Args:
            ports: The chosen ports, by name.

        Returns:
            The parsed ``milvus.yaml`` content.
        """
        import yaml

        data = self.data_dir
        values: dict[str, object] = {
            "proxy_port": ports["port"],
            "etcd_port": ports["etcd_port"],
            "etcd_data_dir": data / "etcd",
            # etcd and Milvus both log to stdout, i.e. into the supervisor's log file
            # (an empty file root path turns Milvus' own rotating files off).
            "etcd_log_path": "stdout",
            "local_storage_dir": data / "storage",
            "rocksmq_data_dir": data / "rocksmq",
            "system_log_path": "",
            **{key: ports[key] for key in _COMPONENT_PORTS},
        }
        template = (milvus_package_dir() / "data" / "config.yaml.template").read_text()

        def fill(match: re.Match[str]) -> str:
            # Placeholders read `{{ key(type): default }}`; keys we do not set keep the default.
            key, _, default = match.group(1).partition(":")
            key = key.split("(")[0].strip()
            return str(values.get(key, default.strip()))

        config: dict[str, Any] = yaml.safe_load(_PLACEHOLDER.sub(fill, template))
        # The embedded etcd otherwise listens on the fixed 2379/2380 of its defaults.
        config["etcd"]["config"] = {"path": str(self.conf_dir / "embed_etcd.yaml")}
        for section in _COMPONENT_PORTS.values():
            # Components register this address in etcd and dial each other through it;
            # the default (first non-loopback address) breaks when the machine's network
            # changes between restarts.
            config[section]["ip"] = "127.0.0.1"
        # Standalone has no other query/index node to hand work to, so waiting for a
        # hand-off on stop only delays shutdown (30 min by default for the whole server).
        config["common"]["gracefulStopTimeout"] = self.graceful_stop_s
        config["queryNode"]["gracefulStopTimeout"] = 1
        config["indexNode"]["gracefulStopTimeout"] = 5
        # A stopped server leaves its data node's etcd session behind; until that lease
        # expires (30 s by default) the restarted server does not take the channel over
        # and searches on loaded collections block. The lease is renewed in-process
        # every few seconds, so only a stall of the whole server this long loses it.
        config["common"]["session"]["ttl"] = self.session_ttl_s
        # Go's collector runs every time the heap grows by GOGC% (the helper keeps GOGC between
        # 30 and 200 by default); while it runs, a search on a 2-core machine waits for a core.
        # A higher ceiling makes the pauses rarer; the helper still lowers GOGC under memory pressure.
        config["queryNode"]["gchelper"] = {"enabled": True, "maximumGoGC": self.settings.milvus.max_go_gc}
        return config

    def embed_etcd_config(self, ports: Mapping[str, int]) -> str:
        """The embedded etcd's own config file: loopback listeners on the chosen ports."""
        client = f"http://127.0.0.1:{ports['etcd_port']}"
        peer = f"http://127.0.0.1:{ports['etcd_peer_port']}"
        lines = {
            "name": "default",
            "listen-client-urls": client,
            "advertise-client-urls": client,
            "listen-peer-urls": peer,
            "initial-advertise-peer-urls": peer,
            "initial-cluster": f"default={peer}",
            # Keep the metadata store small: the default keeps every revision forever.
            "auto-compaction-mode": "revision",
            "auto-compaction-retention": "'1000'",
            "quota-backend-bytes": str(4 * 2**30),
        }
        return "".join(f"{key}: {value}\n" for key, value in lines.items())

    def prepare(self, ports: Mapping[str, int]) -> None:
        """Unpack the binaries (first time only) and write the configuration files.

        The data folder is never touched: a restart finds its collections again.
        """
        import yaml

        unpack_binaries()
        for folder in (self.data_dir, self.conf_dir, self.home / "run", self.home / "logs"):
            folder.mkdir(parents=True, exist_ok=True)
        (self.conf_dir / "milvus.yaml").write_text(yaml.safe_dump(self.milvus_config(ports), sort_keys=False))
        (self.conf_dir / "embed_etcd.yaml").write_text(self.embed_etcd_config(ports))
        # glog (the C++ engine's logger) writes files under the working dir by default.
        (self.conf_dir / "glog.conf").write_text("--logtostderr=true\n--minloglevel=1\n")

    def command(self, ports: Mapping[str, int]) -> list[str]:
        """Run ``milvus run standalone`` in the foreground.

        ``env`` replaces itself with the server (same pid); it carries ``METRICS_PORT``
        because Milvus reads its HTTP (health/metrics) port from that variable only.
        """
        return ["env", f"METRICS_PORT={ports['http_port']}", str(self.executable), "run", "standalone"]

    def environment(self) -> dict[str, str]:
        """Library path to the unpacked binaries, and where the config and run files are."""
        env = dict(os.environ)
        bin_dir = str(binaries_dir())
        env["LD_LIBRARY_PATH"] = os.pathsep.join(p for p in (bin_dir, env.get("LD_LIBRARY_PATH", "")) if p)
        env["MILVUSCONF"] = str(self.conf_dir)
        env["DEPLOY_MODE"] = "STANDALONE"
        env["MILVUS_RUN_DIR"] = str(self.home / "run")
        return env

    def endpoint(self, ports: Mapping[str, int]) -> str:
        """The URI for ``pymilvus.MilvusClient(uri=...)``."""
        return MILVUS.address("127.0.0.1", ports)

    def is_healthy(self, ports: Mapping[str, int]) -> bool:
        """True when every component reports healthy and the proxy answers a real request."""
        import urllib.request

        from lambdarec.runtime.service import tcp_answers

        if not tcp_answers(ports["port"]):
            return False
        # /healthz is OK only once all coordinators and nodes are up, not just the proxy.
        with urllib.request.urlopen(f"http://127.0.0.1:{ports['http_port']}/healthz", timeout=2) as resp:
            if b"OK" not in resp.read():
                return False
        from pymilvus import MilvusClient

        # A dedicated channel: the probe must not share (or close) one a caller is using.
        client = MilvusClient(uri=self.endpoint(ports), timeout=3, dedicated=True)
        try:
            client.list_collections(timeout=3)
            return bool(client.get_server_version(timeout=3))
        finally:
            client.close()
