"""The storefront web app: browse by category, open an item, add to cart, buy; see what is recommended.

Routes (HTML unless noted):

- ``GET /``: the categories of the catalogue;
- ``GET /category?name=C``: the items of one category, most popular first;
- ``GET /item/{item_id}``: one item; opening it publishes a ``view`` event;
- ``POST /actions`` (form ``item_id``, ``event_type``): a ``cart`` or ``purchase`` event (JSON
  for ``Accept: application/json``, else a redirect back to the item);
- ``GET /cart``, ``POST /checkout``: the cart, and one ``purchase`` event per item in it;
- ``POST /user`` (form ``user_id``): sign in as a user (empty: anonymous);
- ``GET /api/recommendations`` (JSON): the panel, asked server-side from ``/recommend``;
- ``GET /healthz`` (JSON): liveness.

A browser gets a session id in a cookie on its first request; the events carry it as
``session_id``, and the optional user id from the ``/user`` form as ``user_id``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated, Any
from urllib.parse import urlsplit

from fastapi import FastAPI, Form, HTTPException, Request, Response
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse
from pydantic import BaseModel, ConfigDict, Field

from lambdarec.events.producer import DeliveryError
from lambdarec.runtime.errors import RuntimeServiceError
from lambdarec.schemas import MAX_ID_LENGTH
from lambdarec.storefront.catalogue import Catalogue
from lambdarec.storefront.pages import render
from lambdarec.storefront.shop import RejectedEventError, Shop, ShopEvent, UnknownItemError

SESSION_COOKIE = "lr_session"
USER_COOKIE = "lr_user"
CATEGORY_PAGE_SIZE = 48
COOKIE_MAX_AGE_S = 30 * 86_400


class ActionResult(BaseModel):
    """What ``POST /actions`` and ``POST /checkout`` answer to a script."""

    model_config = ConfigDict(extra="forbid")

    events: list[dict[str, Any]]
    cart_count: int
    message: str


class UserForm(BaseModel):
    """The sign-in form."""

    user_id: str = Field(default="", max_length=MAX_ID_LENGTH)


def _wants_json(request: Request) -> bool:
    return "application/json" in request.headers.get("accept", "")


def create_app(shop: Shop) -> FastAPI:
    """The storefront over one :class:`Shop`.

    Args:
        shop: Sessions, carts, the publisher and the recommender client.

    Returns:
        The ASGI app.
    """
    app = FastAPI(title="lambdarec storefront", docs_url=None, redoc_url=None, openapi_url=None)
    app.state.shop = shop

    @app.middleware("http")
    async def session_cookie(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        # Each browser gets its own session id on its first request; every event carries it.
        session_id = request.cookies.get(SESSION_COOKIE, "")
        fresh = not (0 < len(session_id) <= MAX_ID_LENGTH)
        if fresh:
            session_id = Shop.new_session_id()
        request.state.session_id = session_id
        user = request.cookies.get(USER_COOKIE) or None
        request.state.user_id = user if user and len(user) <= MAX_ID_LENGTH else None
        response = await call_next(request)
        if fresh:
            response.set_cookie(SESSION_COOKIE, session_id, max_age=COOKIE_MAX_AGE_S, httponly=True, samesite="lax")
        return response

    def page(request: Request, template: str, status_code: int = 200, **context: Any) -> HTMLResponse:
        session_id: str = request.state.session_id
        state = shop.session(session_id)
        html = render(
            template,
            session_id=session_id,
            user_id=request.state.user_id,
            cart_count=len(state.cart),
            last_event_ms=state.last_event.event_time if state.last_event else None,
            panel_html=panel_html(request),
            **context,
        )
        return HTMLResponse(html, status_code=status_code)

    def panel_html(request: Request) -> str:
        panel = shop.panel(request.state.session_id, request.state.user_id)
        catalogue = shop.catalogue()
        popular = [] if panel.answer.ok else catalogue.popular(shop.panel_size)
        return render(
            "panel.html",
            answer=panel.answer,
            items=panel.items,
            last_event=panel.last_event,
            reflects=panel.reflects,
            lag_ms=panel.lag_ms,
            popular=popular,
        )

    def missing(request: Request, message: str) -> HTMLResponse:
        return page(request, "missing.html", status_code=404, message=message)

    @app.exception_handler(DeliveryError)
    async def broker_failed(request: Request, err: DeliveryError) -> JSONResponse:
        return JSONResponse({"detail": f"the broker did not acknowledge the event: {err}"}, status_code=503)

    @app.exception_handler(RuntimeServiceError)
    async def broker_missing(request: Request, err: RuntimeServiceError) -> JSONResponse:
        return JSONResponse({"detail": f"the clickstream is unavailable: {err}"}, status_code=503)

    @app.get("/healthz")
    def healthz() -> dict[str, Any]:
        catalogue: Catalogue = shop.catalogue()
        return {"status": "ok", "catalogue_items": len(catalogue), "snapshot": catalogue.snapshot}

    @app.get("/", response_class=HTMLResponse)
    def home(request: Request) -> HTMLResponse:
        catalogue = shop.catalogue()
        return page(
            request,
            "home.html",
            categories=catalogue.categories(),
            snapshot=catalogue.snapshot,
            item_count=len(catalogue),
        )

    @app.get("/category", response_class=HTMLResponse)
    def category(request: Request, name: str) -> HTMLResponse:
        items = shop.catalogue().in_category(name, limit=CATEGORY_PAGE_SIZE)
        if not items:
            return missing(request, f"no category {name!r} in the catalogue")
        return page(request, "category.html", category=name, items=items)

    @app.get("/item/{item_id}", response_class=HTMLResponse)
    def item(request: Request, item_id: str) -> HTMLResponse:
        entry = shop.catalogue().get(item_id)
        if entry is None:
            return missing(request, f"the shop does not sell item {item_id!r}")
        # Opening an item is the shopper's view event.
        event = _act(request, item_id, "view", origin="GET /item")
        return page(request, "item.html", item=entry, event=event)

    @app.post("/actions", response_model=None)
    def actions(
        request: Request,
        item_id: Annotated[str, Form(min_length=1, max_length=MAX_ID_LENGTH)],
        event_type: Annotated[str, Form(min_length=1, max_length=32)],
    ) -> Response:
        event = _act(request, item_id, event_type, origin="POST /actions")
        state = shop.session(request.state.session_id)
        if _wants_json(request):
            verb = {"cart": "added to the cart", "purchase": "bought", "view": "viewed"}.get(event_type, event_type)
            return JSONResponse(
                ActionResult(
                    events=[event.as_dict()],
                    cart_count=len(state.cart),
                    message=f"{verb}: event {event.event_id} published to Kafka",
                ).model_dump()
            )
        return RedirectResponse(f"/item/{item_id}", status_code=303)

    @app.get("/cart", response_class=HTMLResponse)
    def cart(request: Request, bought: int = 0) -> HTMLResponse:
        catalogue = shop.catalogue()
        state = shop.session(request.state.session_id)
        items = [entry for entry in (catalogue.get(i) for i in state.cart) if entry is not None]
        return page(request, "cart.html", items=items, bought=bought)

    @app.post("/checkout", response_model=None)
    def checkout(request: Request) -> Response:
        state = shop.session(request.state.session_id)
        if not state.cart:
            raise HTTPException(409, "the cart is empty")
        events = [_act(request, item_id, "purchase", origin="POST /checkout") for item_id in list(state.cart)]
        if _wants_json(request):
            return JSONResponse(
                ActionResult(
                    events=[e.as_dict() for e in events],
                    cart_count=len(state.cart),
                    message=f"bought {len(events)} item(s): one purchase event each, published to Kafka",
                ).model_dump()
            )
        return RedirectResponse(f"/cart?bought={len(events)}", status_code=303)

    @app.post("/user", response_model=None)
    def user(request: Request, user_id: Annotated[str, Form(max_length=MAX_ID_LENGTH)] = "") -> Response:
        # Back to the page the form was on; only its path, so the header cannot send the browser elsewhere.
        back = urlsplit(request.headers.get("referer", "")).path or "/"
        response = RedirectResponse(back if back.startswith("/") else "/", status_code=303)
        user_id = user_id.strip()
        if user_id:
            response.set_cookie(USER_COOKIE, user_id, max_age=COOKIE_MAX_AGE_S, httponly=True, samesite="lax")
        else:
            response.delete_cookie(USER_COOKIE)
        return response

    @app.get("/api/recommendations")
    def recommendations(request: Request) -> dict[str, Any]:
        panel = shop.panel(request.state.session_id, request.state.user_id)
        catalogue = shop.catalogue()
        popular = [] if panel.answer.ok else catalogue.popular(shop.panel_size)
        html = render(
            "panel.html",
            answer=panel.answer,
            items=panel.items,
            last_event=panel.last_event,
            reflects=panel.reflects,
            lag_ms=panel.lag_ms,
            popular=popular,
        )
        return {**panel.as_dict(), "html": html}

    def _act(request: Request, item_id: str, event_type: str, *, origin: str) -> ShopEvent:
        try:
            return shop.act(request.state.session_id, request.state.user_id, item_id, event_type, origin=origin)
        except UnknownItemError:
            raise HTTPException(404, f"the shop does not sell item {item_id!r}") from None
        except RejectedEventError as err:
            # The event is on the dead-letter topic with this reason; the shopper hears it too.
            raise HTTPException(422, f"event rejected ({err}); it went to the dead-letter topic") from None

    return app
