"""`w2sg web`: human judging in the browser, and a transcript viewer, over one label store.

Pages (server-rendered Jinja2, autoescaped: model and dataset text is always shown as text):
- `/j/{key}`: a judge's queue (the key is their link's; `oversight.web.queue` assigns items);
- `/j/{key}/next`: the judging page: question, answer under evaluation, the transcript as the
  judge prompt shows it (debaters as A and B by round, quotes marked verified or unverified; never
  speech timings), a p(true) slider, an explanation, and for a graph that allows it an Ask box;
- `/`: the viewer: every label with filters and per-protocol accuracy; `/t/{n}`: one transcript.

Submitting goes through `oversight.labelling.human.make_reply` and `answer`, as `w2sg human answer` does;
the verdict is committed to the store before the page confirms it. Every POST carries the
judge's CSRF token; every response a Content-Security-Policy that allows no inline script. No
request names a file: the store is the one given on the command line.
"""

from __future__ import annotations

import asyncio
import hmac
from collections.abc import Callable
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Form, HTTPException, Request
from fastapi.responses import HTMLResponse, PlainTextResponse, RedirectResponse, Response
from jinja2 import Environment, FileSystemLoader

from oversight.labelling import human
from oversight.web import queue, viewer

HERE = Path(__file__).parent
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; form-action 'self'; "
    "base-uri 'none'; frame-ancestors 'none'"
)
STATIC = {"app.css": "text/css", "app.js": "text/javascript"}  # served by name: no path from a request


LOOPBACK = frozenset({"127.0.0.1", "localhost", "::1"})


def host_names(bound: str) -> frozenset[str] | None:
    """The names a browser may reach a server bound to `bound` by (its `Host:` header); None:
    any, for a wildcard address (0.0.0.0, ::), whose names are not known here (the viewer's
    token guards it). A loopback server answers only to loopback names: a DNS-rebinding page
    (evil.example resolving to 127.0.0.1) sends its own name, and is refused."""
    bound = bound.strip("[]").lower()
    if bound in ("0.0.0.0", "::", ""):
        return None
    if bound in LOOPBACK:
        return frozenset({bound, "localhost"})
    return frozenset({bound})


def host_of(header: str) -> str:
    """The name of a `Host:` header, without its port: `[::1]:8000` → `::1`."""
    header = header.strip().lower()
    if header.startswith("["):
        return header[1 : header.find("]")] if "]" in header else header
    return header.rsplit(":", 1)[0] if header.count(":") == 1 else header


def slider(p: str) -> int:
    """Where the slider goes back to after a refused submission: the number given when it is one
    in [0, 100], else 50 (any text may arrive: "abc", "²", "nan")."""
    try:
        value = float(p)
    except ValueError:
        return 50
    return int(value) if 0 <= value <= 100 else 50


class Site:
    """What every route of one app shares: the store, its pages, the viewer's token, the judges'
    claim timeout, and one lock (one resume at a time: the graph and the store share one file)."""

    def __init__(self, store: Path, token: str | None, timeout_s: float):
        self.store, self.token, self.timeout_s = store, token, timeout_s
        self.env = Environment(loader=FileSystemLoader(HERE / "templates"), autoescape=True)
        self.lock = asyncio.Lock()

    def page(self, name: str, status: int = 200, **ctx: Any) -> HTMLResponse:
        return HTMLResponse(self.env.get_template(name).render(**ctx), status_code=status)

    def judge_of(self, key: str) -> str:
        judge = queue.judge_for(self.store, key)
        if judge is None:
            raise HTTPException(404, "no such judge link")
        return judge

    def check_csrf(self, key: str, csrf: str) -> None:
        if not hmac.compare_digest(csrf, queue.csrf_token(self.store, key)):
            raise HTTPException(403, "the form's CSRF token is missing or wrong: reload the page")

    def viewer_access(self, request: Request) -> str | None:
        """None when allowed; otherwise the reason. A `?token=` link also sets the cookie."""
        if self.token is None:
            return None
        given = request.query_params.get("token") or request.cookies.get("w2sg_token") or ""
        allowed = hmac.compare_digest(given, self.token)
        return None if allowed else "this server needs its token: use the link it printed"

    async def waiting(self) -> list[human.Pending]:
        return [p for p in await human.pending(self.store) if not p.stalled]  # stalled: `w2sg human answer`

    def judging(
        self, key: str, item: human.Pending, error: str = "", p: int = 50, why: str = ""
    ) -> dict[str, Any]:
        rounds: dict[int, list[dict[str, Any]]] = {}
        for t in item.turns:
            rounds.setdefault(t["round"], []).append(
                {"speaker": t["speaker"], "segments": viewer.segments(t["text"])}
            )
        quotes = any(k != "text" for ts in rounds.values() for t in ts for k, _ in t["segments"])
        return {
            "key": key,
            "item": item,
            "rounds": sorted(rounds.items()),
            "quotes": quotes,
            "csrf": queue.csrf_token(self.store, key),
            "error": error or item.error or "",
            "p": p,
            "why": why,
        }

    async def answer_held(
        self,
        key: str,
        csrf: str,
        thread: str,
        make: Callable[[str, human.Pending], Any],
        failed: str,
        *,
        release: bool = True,
        **back: Any,
    ) -> tuple[str, human.Pending, Any] | HTMLResponse:
        """Resume the thread the judge of `key` holds with `make(judge, item)` (a verdict or a
        question): (judge, item, final state), the claim released unless `release` is False; a
        refused reply gives the judging page again (400), `failed` and the form's values (`back`)."""
        judge = self.judge_of(key)
        self.check_csrf(key, csrf)
        async with self.lock:
            item = await self.held_item(judge, thread)
            try:
                state = await human.answer(self.store, thread, make(judge, item))
            except (ValueError, human.ResumeFailed) as e:
                ctx = self.judging(key, item, error=f"{failed}: {e}", **back)
                return self.page("judge.html", status=400, judge=judge, **ctx)
            if release:
                queue.release(self.store, thread)
        return judge, item, state

    async def held_item(self, judge: str, thread: str) -> human.Pending:
        if queue.holder(self.store, thread, self.timeout_s) != judge:
            raise HTTPException(
                409, "this item is not assigned to you (it timed out, or was judged): take the next one"
            )
        item = next((p for p in await self.waiting() if p.thread_id == thread), None)
        if item is None:
            raise HTTPException(409, "this item is no longer waiting")
        return item


def create_app(
    store: Path,
    *,
    token: str | None = None,
    timeout_s: float = 900.0,
    hosts: frozenset[str] | None = LOOPBACK,
) -> FastAPI:
    """The app over `store` (a label store; its file also holds the queue). With `token`, the
    viewer needs it (a `?token=` link sets a cookie); judges always need their key. `hosts`:
    the `Host:` names it answers to (`host_names` of the bound address; None: any)."""
    app = FastAPI(docs_url=None, redoc_url=None, openapi_url=None)
    site = Site(store, token, timeout_s)

    @app.middleware("http")
    async def headers(request: Request, call_next: Any) -> Response:
        if hosts is not None and host_of(request.headers.get("host", "")) not in hosts:
            response: Response = PlainTextResponse("unknown Host header", status_code=400)
        else:
            response = await call_next(request)
        response.headers["Content-Security-Policy"] = CSP
        response.headers["X-Content-Type-Options"] = "nosniff"
        response.headers["Referrer-Policy"] = "no-referrer"  # keys are in links: never pass them on
        response.headers["Cache-Control"] = "no-store"
        return response

    @app.get("/static/{name}")
    def static(name: str) -> Response:
        if name not in STATIC:
            raise HTTPException(404)
        return Response((HERE / "static" / name).read_text(), media_type=STATIC[name])

    queue_routes(app, site)
    judging_routes(app, site)
    viewer_routes(app, site)
    return app


def queue_routes(app: FastAPI, site: Site) -> None:
    """A judge's queue, and the next item it assigns them."""

    @app.get("/j/{key}", response_class=HTMLResponse)
    async def judge_home(key: str) -> HTMLResponse:
        judge = site.judge_of(key)
        items = await site.waiting()
        return site.page("queue.html", key=key, judge=judge, waiting=len(items))

    @app.get("/j/{key}/next", response_class=HTMLResponse)
    async def judge_next(key: str) -> HTMLResponse:
        judge = site.judge_of(key)
        async with site.lock:
            items = await site.waiting()
            tid = queue.claim(site.store, judge, [p.thread_id for p in items], site.timeout_s)
        if tid is None:
            return site.page("queue.html", key=key, judge=judge, waiting=len(items), none_left=True)
        item = next(p for p in items if p.thread_id == tid)
        return site.page("judge.html", judge=judge, **site.judging(key, item))


def judging_routes(app: FastAPI, site: Site) -> None:
    """A judge's verdict on, or question about, the item they hold."""

    @app.post("/j/{key}/verdict", response_class=HTMLResponse)
    async def judge_verdict(
        key: str,
        thread: str = Form(...),
        p: str = Form(""),
        explanation: str = Form(""),
        csrf: str = Form(""),
    ) -> HTMLResponse:
        def reply(judge: str, item: human.Pending) -> dict[str, Any]:
            return human.make_reply(p, explanation, judge=judge, rules=item.rules, percent=True)

        # the label is committed in `answer_held`, before this page confirms it
        out = await site.answer_held(key, csrf, thread, reply, "not recorded", p=slider(p), why=explanation)
        if isinstance(out, HTMLResponse):
            return out
        judge, item, state = out
        return site.page("recorded.html", key=key, judge=judge, item=item, p_true=state["verdict"].p_true)

    @app.post("/j/{key}/ask")
    async def judge_ask(
        key: str, thread: str = Form(...), question: str = Form(""), csrf: str = Form("")
    ) -> Response:
        def ask(judge: str, item: human.Pending) -> dict[str, Any]:
            return human.make_ask(question, judge=judge)

        out = await site.answer_held(key, csrf, thread, ask, "not asked", release=False)
        if isinstance(out, HTMLResponse):
            return out
        return RedirectResponse(f"/j/{key}/next", status_code=303)  # the reply is on the page


def viewer_routes(app: FastAPI, site: Site) -> None:
    """The viewer: every label with filters, and one transcript."""

    @app.get("/", response_class=HTMLResponse)
    async def index(
        request: Request,
        protocol: str = "",
        status: str = "",
        verdict: str = "",
        pmin: str = "",
        pmax: str = "",
        q: str = "",
    ) -> HTMLResponse:
        if (why := site.viewer_access(request)) is not None:
            return site.page("denied.html", status=403, why=why)
        try:
            f = viewer.Filters(
                protocol=protocol,
                status=status,
                verdict=verdict,
                pmin=float(pmin) if pmin else None,
                pmax=float(pmax) if pmax else None,
                q=q,
            )
        except ValueError:
            raise HTTPException(400, "pmin and pmax are numbers in [0, 1]") from None
        rows, _ = viewer.load(site.store)
        shown = viewer.select(rows, f)
        response = site.page(
            "viewer.html",
            rows=shown[:1000],
            total=len(rows),
            matched=len(shown),
            summary=viewer.summary(rows),
            protocols=sorted({r.protocol for r in rows}),
            f=f,
            pending=len(await site.waiting()),
            store=site.store.name,
        )
        if site.token is not None and request.query_params.get("token"):
            response.set_cookie("w2sg_token", site.token, httponly=True, samesite="strict")
        return response

    @app.get("/t/{n}", response_class=HTMLResponse)
    async def transcript(request: Request, n: int) -> HTMLResponse:
        if (why := site.viewer_access(request)) is not None:
            return site.page("denied.html", status=403, why=why)
        rows, records = viewer.load(site.store)
        if not 0 <= n < len(rows):
            raise HTTPException(404, "no such row")
        rec = records[n]
        turns = viewer.shown_turns(rec.get("transcript", []))
        return site.page("transcript.html", row=rows[n], rec=rec, turns=turns)
