"""The storefront's HTML: server-rendered pages (Jinja2, autoescaped) from ``templates/``.

``base.html`` holds the page frame and the panel's small script: it polls
``/api/recommendations`` after each action until the answer reflects the new event.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from jinja2 import Environment, PackageLoader, select_autoescape


@lru_cache(maxsize=1)
def environment() -> Environment:
    """The page templates (loaded on first use)."""
    return Environment(
        loader=PackageLoader("lambdarec.storefront", "templates"),
        autoescape=select_autoescape(default=True, default_for_string=True),
    )


def render(template: str, **context: Any) -> str:
    """Render one template with its context."""
    return environment().get_template(template).render(**context)
