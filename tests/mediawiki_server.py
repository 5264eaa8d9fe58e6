"""A MediaWiki api.php stand-in on 127.0.0.1 for the download tests.

Speaks the action=query, formatversion=2 response shape of TextExtracts: title
normalisation, redirects, missing pages, one whole-article extract per response with a
`continue` token for the rest, and scripted failures (503 with Retry-After, then success).
It can also answer as an old wiki does (formatversion=1: pages keyed by id, flags as ""),
send one fixed raw body to every request, or hand back a `continue` token that never moves.
"""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse

ARTICLES = {
    "Battle of Stalingrad": (
        "The Battle of Stalingrad was fought from August 1942 to February 1943.[1] "
        "The German 6th Army under Gen. Friedrich Paulus was encircled.\n\n"
        "== Background ==\nIn the summer of 1942 Germany launched Case Blue toward the Volga and the Caucasus.\n\n"
        "== References ==\nBeevor, Antony. Stalingrad."
    ),
    "Battle of Midway": (
        "The Battle of Midway was fought in June 1942 near Midway Atoll. "
        "The U.S. Navy sank four Japanese aircraft carriers.\n\n"
        "== Aftermath ==\nJapan lost Akagi, Kaga, Soryu and Hiryu, and the initiative passed to the Allies."
    ),
    "Operation Barbarossa": (
        "Operation Barbarossa was the German invasion of the Soviet Union, launched on 22 June 1941. "
        "About 3 million Axis soldiers crossed the border."
    ),
}
REDIRECTS = {"Stalingrad": "Battle of Stalingrad"}


class MediaWikiState:
    def __init__(
        self,
        fail_first: int = 0,
        retry_after: str | None = None,
        format_version: int = 2,
        raw_reply: bytes | None = None,
        raw_headers: dict | None = None,
        stuck_continue: bool = False,
    ):
        self.fail_first = fail_first  # answer this many requests with 503 before working
        self.retry_after = retry_after
        self.format_version = format_version  # 1: the shape of wikis that ignore formatversion=2
        self.raw_reply = raw_reply  # answer every request with these bytes (status 200)
        self.raw_headers = raw_headers or {}  # and these headers
        self.stuck_continue = stuck_continue  # always hand back the first continue token
        self.requests: list[dict] = []
        self.user_agents: list[str] = []
        self.lock = threading.Lock()

    def answer(self, query: dict) -> tuple[int, dict, dict | bytes]:
        with self.lock:
            self.requests.append(query)
            if self.fail_first > 0:
                self.fail_first -= 1
                headers = {"Retry-After": self.retry_after} if self.retry_after else {}
                return 503, headers, {"error": "unavailable"}
            if self.raw_reply is not None:
                return 200, self.raw_headers, self.raw_reply
        titles = query["titles"].split("|")
        normalized, redirects, pages = [], [], []
        start = 0 if self.stuck_continue else int(query.get("excontinue", "0"))
        for i, title in enumerate(titles):
            name = title[0].upper() + title[1:]
            if name != title:
                normalized.append({"from": title, "to": name})
            if name in REDIRECTS:
                redirects.append({"from": name, "to": REDIRECTS[name]})
                name = REDIRECTS[name]
            if name in ARTICLES:
                page = {
                    "pageid": 100 + i,
                    "ns": 0,
                    "title": name,
                    "revisions": [{"revid": 9000 + i, "timestamp": "2026-01-01T00:00:00Z"}],
                }
                pages.append(page)
            else:
                pages.append({"ns": 0, "title": name, "missing": True})
        # TextExtracts returns one whole-article extract per response, then asks to continue.
        with_text = [p for p in pages if not p.get("missing")]
        body: dict = {"batchcomplete": True, "query": {"pages": pages}}
        if normalized:
            body["query"]["normalized"] = normalized
        if redirects:
            body["query"]["redirects"] = redirects
        if start < len(with_text):
            with_text[start]["extract"] = ARTICLES[with_text[start]["title"]]
        if start + 1 < len(with_text):
            body["continue"] = {"excontinue": start + 1, "continue": "||revisions"}
        if self.format_version == 1:
            for page in pages:
                if page.pop("missing", False):
                    page["missing"] = ""
            body["query"]["pages"] = {str(p.get("pageid", -1 - i)): p for i, p in enumerate(pages)}
            body["batchcomplete"] = ""
        return 200, {}, body


def start_server(state: MediaWikiState):
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 (http.server API)
            query = {k: v[0] for k, v in parse_qs(urlparse(self.path).query).items()}
            state.user_agents.append(self.headers.get("User-Agent", ""))
            status, headers, body = state.answer(query)
            data = body if isinstance(body, bytes) else json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            for key, value in headers.items():
                self.send_header(key, value)
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    return server, f"http://127.0.0.1:{server.server_address[1]}/w/api.php"
