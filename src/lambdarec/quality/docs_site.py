"""The data-docs site, offline: GX's pages with their CDN assets served from local copies.

GX 1.x pages load Bootstrap, jQuery, Popper, bootstrap-table, bootstrap-datepicker, Vega and Font
Awesome from public CDNs, which many networks (and this project's machines) cannot reach. The same
files exist as npm packages: :func:`vendor_assets` fetches each pinned package once with
``npm pack`` (at setup time, from the npm registry) into ``.cache/vendor/docs``; :func:`make_offline`
copies them into the site's ``static/vendor/`` and points every page at them with relative paths.
:func:`serve` serves the site over HTTP, on loopback unless told otherwise.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tarfile
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from lambdarec.settings import find_project_root


@dataclass(frozen=True)
class Asset:
    """One CDN file of GX's pages and where its npm package keeps it.

    Attributes:
        url: The address GX's templates use.
        package: npm package spec, pinned (``name@version``).
        path: The file inside the package (``package/`` stripped).
        folders: Sibling folders the file needs too (Font Awesome's CSS loads ``../webfonts``).
    """

    url: str
    package: str
    path: str
    folders: tuple[str, ...] = ()

    @property
    def local(self) -> str:
        """Where the file lives under the site's ``static/vendor/``."""
        return f"{self.package.replace('/', '__')}/{self.path}"


ASSETS: tuple[Asset, ...] = (
    Asset("https://code.jquery.com/jquery-3.7.1.min.js", "jquery@3.7.1", "dist/jquery.min.js"),
    Asset(
        "https://cdnjs.cloudflare.com/ajax/libs/popper.js/1.12.9/umd/popper.min.js",
        "popper.js@1.12.9",
        "dist/umd/popper.min.js",
    ),
    Asset(
        "https://maxcdn.bootstrapcdn.com/bootstrap/4.3.1/css/bootstrap.min.css",
        "bootstrap@4.3.1",
        "dist/css/bootstrap.min.css",
    ),
    Asset(
        "https://stackpath.bootstrapcdn.com/bootstrap/4.3.1/js/bootstrap.min.js",
        "bootstrap@4.3.1",
        "dist/js/bootstrap.min.js",
    ),
    Asset(
        "https://cdn.jsdelivr.net/npm/@forevolve/bootstrap-dark@1.1.0/dist/css/bootstrap-prefers-dark.css",
        "@forevolve/bootstrap-dark@1.1.0",
        "dist/css/bootstrap-prefers-dark.css",
    ),
    Asset(
        "https://cdnjs.cloudflare.com/ajax/libs/bootstrap-datepicker/1.9.0/css/bootstrap-datepicker.min.css",
        "bootstrap-datepicker@1.9.0",
        "dist/css/bootstrap-datepicker.min.css",
    ),
    Asset(
        "https://cdnjs.cloudflare.com/ajax/libs/bootstrap-datepicker/1.9.0/js/bootstrap-datepicker.min.js",
        "bootstrap-datepicker@1.9.0",
        "dist/js/bootstrap-datepicker.min.js",
    ),
    Asset(
        "https://unpkg.com/bootstrap-table@1.19.1/dist/bootstrap-table.min.css",
        "bootstrap-table@1.19.1",
        "dist/bootstrap-table.min.css",
    ),
    Asset(
        "https://unpkg.com/bootstrap-table@1.19.1/dist/bootstrap-table.min.js",
        "bootstrap-table@1.19.1",
        "dist/bootstrap-table.min.js",
    ),
    Asset(
        "https://unpkg.com/bootstrap-table@1.19.1/dist/extensions/filter-control/bootstrap-table-filter-control.min.js",
        "bootstrap-table@1.19.1",
        "dist/extensions/filter-control/bootstrap-table-filter-control.min.js",
    ),
    Asset(
        "https://unpkg.com/bootstrap-table@1.19.0/dist/extensions/filter-control/bootstrap-table-filter-control.css",
        "bootstrap-table@1.19.0",
        "dist/extensions/filter-control/bootstrap-table-filter-control.css",
    ),
    Asset(
        "https://unpkg.com/bootstrap-table@1.19.0/dist/extensions/filter-control/bootstrap-table-filter-control.min.css",
        "bootstrap-table@1.19.0",
        "dist/extensions/filter-control/bootstrap-table-filter-control.min.css",
    ),
    Asset(
        "https://cdnjs.cloudflare.com/ajax/libs/font-awesome/6.6.0/css/all.min.css",
        "@fortawesome/fontawesome-free@6.6.0",
        "css/all.min.css",
        folders=("webfonts",),
    ),
    # jsDelivr resolves a bare major version to the package's browser build.
    Asset("https://cdn.jsdelivr.net/npm/vega@5", "vega@5.33.1", "build/vega.min.js"),
    Asset("https://cdn.jsdelivr.net/npm/vega-lite@5", "vega-lite@5.23.0", "build/vega-lite.min.js"),
    Asset("https://cdn.jsdelivr.net/npm/vega-embed@6", "vega-embed@6.29.0", "build/vega-embed.min.js"),
)
"""Every external asset GX 1.24's page templates reference (``render/view/templates``)."""

_GX_IMAGES = re.compile(
    r"https://great-expectations-web-assets\.s3\.[a-z0-9-]+\.amazonaws\.com/([A-Za-z0-9_.-]+)(\?[^\"')\s]*)?"
)
"""GX's logo, loaded from S3 with the data context's id in the query string: served from the site instead."""
_REMOTE = re.compile(r"""(src|href)=(["'])(https?://[^"']+)\2""")
_SRI = re.compile(r"""\s+(integrity|crossorigin)=(["'])[^"']*\2""")


def vendor_dir() -> Path:
    """Where the npm copies live: ``LAMBDAREC_DOCS_VENDOR``, else ``.cache/vendor/docs`` of the checkout."""
    override = os.environ.get("LAMBDAREC_DOCS_VENDOR")
    if override:
        return Path(override)
    root = find_project_root()
    return (root if root is not None else Path.cwd()) / ".cache" / "vendor" / "docs"


def missing_assets(folder: Path | None = None) -> list[Asset]:
    """The assets not (yet) vendored in ``folder``."""
    base = folder or vendor_dir()
    return [a for a in ASSETS if not (base / a.local).is_file()]


def vendor_assets(folder: Path | None = None, npm: str = "npm") -> Path:
    """Fetch every pinned package with ``npm pack`` and keep the files the pages use (idempotent).

    Raises:
        FileNotFoundError: ``npm`` is not installed.
        subprocess.CalledProcessError: ``npm pack`` failed (registry unreachable, unknown version).
    """
    base = folder or vendor_dir()
    todo = missing_assets(base)
    if not todo:
        return base
    if shutil.which(npm) is None:
        raise FileNotFoundError(f"{npm} not found: install Node.js/npm to vendor the data-docs assets")
    packages = sorted({a.package for a in todo})
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run(
            [npm, "pack", "--silent", "--pack-destination", tmp, *packages],
            check=True,
            capture_output=True,
            text=True,
            timeout=300,
        )
        tarballs = {p.name: p for p in Path(tmp).glob("*.tgz")}
        for package in packages:
            name, version = package.rsplit("@", 1)
            tarball = tarballs[f"{name.lstrip('@').replace('/', '-')}-{version}.tgz"]
            wanted = [a for a in todo if a.package == package]
            keep = {a.path for a in wanted}
            prefixes = tuple(f"{d}/" for a in wanted for d in a.folders)
            target = base / package.replace("/", "__")
            with tarfile.open(tarball) as archive:
                for member in archive.getmembers():
                    inner = member.name.removeprefix("package/")
                    if not member.isfile() or not (inner in keep or inner.startswith(prefixes)):
                        continue
                    dst = target / inner
                    dst.parent.mkdir(parents=True, exist_ok=True)
                    source = archive.extractfile(member)
                    if source is not None:
                        dst.write_bytes(source.read())
    return base


def make_offline(site: Path, vendored: Path | None = None) -> list[str]:
    """Copy the vendored assets into ``site/static/vendor`` and point every page at them.

    Pages are rewritten in place (relative paths, so the site works from any folder or server);
    subresource-integrity attributes are dropped from the rewritten tags, the local copies coming
    from npm rather than the CDN. Idempotent.

    Returns:
        The remote URLs still left in the pages (empty when the site is fully offline).
    """
    base = vendored or vendor_dir()
    by_url = {a.url: a for a in ASSETS if (base / a.local).is_file()}
    static = site / "static" / "vendor"
    for asset in by_url.values():
        dst = static / asset.local
        if not dst.is_file():
            dst.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(base / asset.local, dst)
        for folder in asset.folders:
            src_folder = base / asset.package.replace("/", "__") / folder
            dst_folder = static / asset.package.replace("/", "__") / folder
            if src_folder.is_dir() and not dst_folder.is_dir():
                shutil.copytree(src_folder, dst_folder)
    for sheet in (site / "static" / "styles").glob("*.css"):
        css = sheet.read_text(encoding="utf-8")
        fixed = _GX_IMAGES.sub(lambda m: _local_image(site, "../vendor", m.group(1)), css)
        if fixed != css:
            sheet.write_text(fixed, encoding="utf-8")
    left: set[str] = set()
    for page in site.rglob("*.html"):
        relative = os.path.relpath(static, page.parent)
        text = page.read_text(encoding="utf-8")

        def local(match: re.Match[str], relative: str = relative) -> str:
            attr, quote, url = match.groups()
            asset = by_url.get(url)
            if asset is None:
                return match.group(0)
            return f'{attr}={quote}{relative}/{asset.local}{quote} data-offline="1"'

        def image(match: re.Match[str], relative: str = relative) -> str:
            return _local_image(site, relative, match.group(1))

        rewritten = _GX_IMAGES.sub(image, _REMOTE.sub(local, text))
        # Only the tags we rewrote lose their SRI attributes (they are marked data-offline).
        rewritten = re.sub(r"<(script|link)\b[^>]*data-offline=\"1\"[^>]*>", _drop_sri, rewritten)
        if rewritten != text:
            page.write_text(rewritten, encoding="utf-8")
        left.update(m.group(3) for m in _REMOTE.finditer(rewritten) if _is_asset_tag(rewritten, m))
    return sorted(left)


def _local_image(site: Path, vendor_relative: str, name: str) -> str:
    """The site's own copy of a GX image (its long logo when GX ships no file of that name)."""
    images = site / "static" / "images"
    chosen = name if (images / name).is_file() else "logo-long.png"
    return f"{vendor_relative}/../images/{chosen}"


def _drop_sri(match: re.Match[str]) -> str:
    return _SRI.sub("", match.group(0))


def _is_asset_tag(text: str, match: re.Match[str]) -> bool:
    """Whether a remote URL is loaded by the page (a script or stylesheet), not a plain link."""
    start = text.rfind("<", 0, match.start())
    tag = text[start : match.start()].lower()
    return tag.startswith("<script") or (tag.startswith("<link") and "stylesheet" in tag)


def serve(site: Path, host: str = "127.0.0.1", port: int = 0, ready: Callable[[str], None] | None = None) -> None:
    """Serve ``site`` over HTTP until interrupted; ``ready`` gets the URL once the socket listens.

    Args:
        site: The data-docs folder (holds ``index.html``).
        host: Listen address; loopback by default (the site shows sample values of the data).
        port: Port; 0 picks a free one.
        ready: Called with ``http://host:port/`` when listening.
    """
    from functools import partial
    from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer

    class QuietHandler(SimpleHTTPRequestHandler):
        def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - the base class's name
            # One line per asset request drowns the URL the user needs.
            pass

    server = ThreadingHTTPServer((host, port), partial(QuietHandler, directory=str(site)))
    try:
        bound_host, bound_port = server.server_address[:2]
        if ready is not None:
            ready(f"http://{bound_host!s}:{bound_port}/")
        server.serve_forever()
    finally:
        server.server_close()
