"""The storefront as a managed local process, and the server it runs.

:class:`StorefrontService` runs ``python -m lambdarec.storefront.service`` under the same
supervisor as the engines (pid, port, log and stop by process group in
``<state>/services/storefront``); :func:`serve` is that process: the app of
:mod:`lambdarec.storefront.app` under uvicorn, bound to ``settings.listen_host``.
"""

from __future__ import annotations

import argparse
import json
import sys
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

from lambdarec.names import STOREFRONT_SERVICE
from lambdarec.runtime.service import ManagedService
from lambdarec.settings import Settings, load_settings

if TYPE_CHECKING:
    from lambdarec.storefront.shop import Shop


class StorefrontService(ManagedService):
    """The storefront web app on ``settings.listen_host`` (loopback unless opened)."""

    name = STOREFRONT_SERVICE
    port_names = ("port",)
    startup_timeout_s = 60.0
    stop_timeout_s = 10.0

    def configured_ports(self) -> Mapping[str, int]:
        """The port pinned in settings (0 = pick a free one, kept across restarts)."""
        return {"port": self.settings.storefront.port}

    def prepare(self, ports: Mapping[str, int]) -> None:
        """Nothing to prepare: the storefront keeps no data of its own (sessions live in memory)."""

    def command(self, ports: Mapping[str, int]) -> list[str]:
        """Run the server in the foreground with this interpreter."""
        return [
            sys.executable,
            "-m",
            "lambdarec.storefront.service",
            "--env",
            self.settings.env,
            "--state-dir",
            str(self.settings.state_dir.resolve()),
            "--host",
            self.settings.listen_host,
            "--port",
            str(ports["port"]),
        ]

    def environment(self) -> dict[str, str]:
        """Unbuffered output, so the log shows each request as it happens."""
        return {**super().environment(), "PYTHONUNBUFFERED": "1"}

    def endpoint(self, ports: Mapping[str, int]) -> str:
        """The storefront's URL (loopback works whatever interface it listens on)."""
        return f"http://127.0.0.1:{ports['port']}"

    def is_healthy(self, ports: Mapping[str, int]) -> bool:
        """True when ``GET /healthz`` answers ``ok``."""
        try:
            with urllib.request.urlopen(f"{self.endpoint(ports)}/healthz", timeout=2) as response:  # noqa: S310
                return response.status == 200 and json.load(response).get("status") == "ok"
        except (urllib.error.URLError, ConnectionError, TimeoutError, ValueError):
            return False


def build_shop(settings: Settings) -> Shop:
    """The :class:`~lambdarec.storefront.shop.Shop` of an environment: its lake, its Kafka, its recommender."""
    from lambdarec.batch.gold import ITEM_STATS
    from lambdarec.batch.lake import Lake
    from lambdarec.events.admin import kafka_bootstrap
    from lambdarec.storefront.catalogue import CatalogueSource
    from lambdarec.storefront.recommendations import RecommenderClient
    from lambdarec.storefront.shop import KafkaEvents, Shop

    catalogue = CatalogueSource(Lake.under(settings.state_dir).gold(ITEM_STATS))
    events = KafkaEvents(
        lambda: kafka_bootstrap(settings),
        max_event_bytes=settings.kafka.max_event_bytes,
        max_future_ms=settings.max_clock_skew_s * 1000,
    )
    return Shop(catalogue.get, events, RecommenderClient.from_settings(settings))


def serve(settings: Settings, host: str, port: int) -> None:
    """Run the storefront in the foreground until interrupted."""
    import uvicorn

    from lambdarec.storefront.app import create_app

    uvicorn.run(create_app(build_shop(settings)), host=host, port=port, log_level="info")


def main(argv: Sequence[str] | None = None) -> None:
    """Entry point of the managed process (``python -m lambdarec.storefront.service``)."""
    parser = argparse.ArgumentParser(description="The lambdarec storefront (run by `lambdarec storefront start`).")
    parser.add_argument("--env", default=None)
    parser.add_argument("--state-dir", default=None)
    parser.add_argument("--host", default=None)
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args(argv)
    overrides = {"state_dir": args.state_dir} if args.state_dir else {}
    settings = load_settings(args.env, **overrides)
    serve(settings, args.host or settings.listen_host, args.port)


if __name__ == "__main__":
    main()
