"""The MediaWiki API source of the download stage: plain-text extracts, batched and cached.

One request asks for up to `batch_size` titles with prop=extracts|revisions. TextExtracts
returns whole-article extracts one page at a time and hands back a `continue` token for the
rest (https://www.mediawiki.org/wiki/Extension:TextExtracts#API), so a batch is a short
chain of continued requests. Redirects and title normalisation are followed (`redirects=1`).
Each finished article is cached under the requested title, so a rerun, or a resumed run
after a crash, asks only for what is still missing. 429/5xx/timeouts/connection errors are
retried with exponential backoff, honouring Retry-After (API etiquette:
https://www.mediawiki.org/wiki/API:Etiquette).
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections.abc import Callable
from pathlib import Path
from urllib.parse import quote

import httpx

from common.files import atomic_write
from common.progress import progress
from corpus.articles import DownloadError, DownloadParams, split_wiki_sections

log = logging.getLogger("download.api")

RETRY_STATUSES = {429, 500, 502, 503, 504}
RETRY_API_ERRORS = {"maxlag", "ratelimited", "readonly"}


class ArticleCache:
    """One JSON file per requested title, written atomically."""

    def __init__(self, root: Path):
        self.root = root
        root.mkdir(parents=True, exist_ok=True)

    def _path(self, title: str) -> Path:
        return self.root / (hashlib.sha1(title.encode("utf-8")).hexdigest() + ".json")

    def get(self, title: str) -> dict | None:
        path = self._path(title)
        if not path.exists():
            return None
        try:
            return json.loads(path.read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError):
            log.warning("cache entry for %r is corrupt; fetching it again", title)
            return None

    def put(self, title: str, record: dict) -> None:
        with atomic_write(self._path(title)) as handle:
            json.dump(record, handle, ensure_ascii=False)


class MediaWikiClient:
    """GET requests to api.php with retries, backoff, Retry-After and a minimum interval."""

    def __init__(self, params: DownloadParams, sleep: Callable[[float], None] = time.sleep):
        self.params = params
        self.sleep = sleep
        self.http = httpx.Client(
            headers={"User-Agent": params.user_agent, "Accept-Encoding": "gzip"},
            timeout=params.timeout_seconds,
            follow_redirects=True,
        )
        self._last_request = 0.0

    def close(self) -> None:
        self.http.close()

    def _wait_politely(self) -> None:
        gap = time.monotonic() - self._last_request
        if gap < self.params.min_interval_seconds:
            self.sleep(self.params.min_interval_seconds - gap)
        self._last_request = time.monotonic()

    def _backoff(self, attempt: int, retry_after: str | None) -> float:
        if retry_after:
            try:
                return min(float(retry_after), self.params.max_backoff_seconds)
            except ValueError:
                pass  # an HTTP-date Retry-After: fall back to our own schedule
        return min(self.params.backoff_seconds * 2**attempt, self.params.max_backoff_seconds)

    def get(self, query: dict) -> dict:
        last_problem = "no attempt made"
        for attempt in range(self.params.max_retries + 1):
            self._wait_politely()
            retry_after = None
            try:
                response = self.http.get(self.params.api_url, params=query)
            except httpx.RequestError as exc:  # timeouts, connection errors, a body that fails to decode
                last_problem = f"{type(exc).__name__}: {exc}"
            else:
                if response.status_code in RETRY_STATUSES:
                    last_problem = f"HTTP {response.status_code}"
                    retry_after = response.headers.get("Retry-After")
                elif response.status_code != 200:
                    raise DownloadError(f"{self.params.api_url}: HTTP {response.status_code}: {response.text[:200]}")
                else:
                    try:
                        data = json.loads(response.content)  # bytes: invalid UTF-8 is an error, not U+FFFD
                    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
                        last_problem = f"reply is not JSON in UTF-8 ({exc})"
                    else:
                        if not isinstance(data, dict):
                            raise DownloadError(
                                f"{self.params.api_url}: reply is a JSON {type(data).__name__}, not an object: "
                                f"{response.text[:200]}"
                            )
                        if not data.get("error"):
                            return data
                        code, info = api_error(data["error"])
                        if code not in RETRY_API_ERRORS:
                            raise DownloadError(f"{self.params.api_url}: API error {code}: {info}")
                        last_problem = f"API error {code}"
                        retry_after = response.headers.get("Retry-After")
            if attempt < self.params.max_retries:
                wait = self._backoff(attempt, retry_after)
                log.warning("retry=%d problem=%r wait_s=%.2f", attempt + 1, last_problem, wait)
                self.sleep(wait)
        raise DownloadError(
            f"{self.params.api_url}: gave up after {self.params.max_retries + 1} attempts ({last_problem})"
        )


def api_error(error: object) -> tuple[str, str]:
    """(code, info) of an API error: an object {"code", "info"} (or {"code", "*"} in
    formatversion=1), or a bare string some proxies and old wikis send."""
    if isinstance(error, dict):
        return str(error.get("code", "unknown")), str(error.get("info", error.get("*", "")))
    return "unknown", str(error)


def reply_pages(data: dict, where: str) -> list[dict]:
    """The pages of one reply, in formatversion=2 shape: a list, flags as booleans.

    formatversion=1 keys pages by page id and marks flags with "" ("missing": ""), and an
    extract may come as {"*": text}; a page must have a title to be matched to a request."""
    query = data.get("query", {})
    if not isinstance(query, dict):
        raise DownloadError(f"{where}: 'query' is a JSON {type(query).__name__}, not an object")
    pages = query.get("pages", [])
    pages = list(pages.values()) if isinstance(pages, dict) else pages
    if not isinstance(pages, list):
        raise DownloadError(f"{where}: 'pages' is neither a list nor an object")
    result = []
    for page in pages:
        if not isinstance(page, dict) or not isinstance(page.get("title"), str) or not page["title"]:
            raise DownloadError(f"{where}: a page without a title: {str(page)[:200]}")
        page = {**page, **{flag: True for flag in ("missing", "invalid", "redirect") if flag in page}}
        if isinstance(page.get("extract"), dict):
            page["extract"] = page["extract"].get("*", "")
        result.append(page)
    return result


def title_mapping(query: dict, step: str, where: str) -> dict[str, str]:
    """`normalized` or `redirects` of a reply as {from: to}; malformed items are an error."""
    items = query.get(step, [])
    if not isinstance(items, list) or not all(
        isinstance(i, dict) and isinstance(i.get("from"), str) and isinstance(i.get("to"), str) for i in items
    ):
        raise DownloadError(f"{where}: '{step}' is not a list of {{from, to}} titles: {str(items)[:200]}")
    return {item["from"]: item["to"] for item in items}


def query_batch(client: MediaWikiClient, titles: list[str]) -> dict:
    """Fetch one batch, following `continue` until complete.

    Returns {"pages": {title: page}, "resolve": {requested: final title}}.
    """
    base = {
        "action": "query",
        "format": "json",
        "formatversion": "2",
        "prop": "extracts|revisions",
        "explaintext": "1",
        "exsectionformat": "wiki",
        "rvprop": "ids|timestamp",
        "redirects": "1",
        "maxlag": "5",
        "titles": "|".join(titles),
    }
    pages: dict[str, dict] = {}
    resolve = {t: t for t in titles}
    cont: dict = {}
    seen_continues: set[str] = set()
    where = f"{client.params.api_url}: reply for the batch from {titles[0]!r} ({len(titles)} titles)"
    while True:
        data = client.get({**base, **cont})
        for page in reply_pages(data, where):
            merged = pages.setdefault(page["title"], {})
            merged.update({k: v for k, v in page.items() if v not in (None, "")})
        query = data.get("query", {})
        for step in ("normalized", "redirects"):
            mapping = title_mapping(query, step, where)
            resolve = {req: mapping.get(cur, cur) for req, cur in resolve.items()}
        if "continue" not in data:
            return {"pages": pages, "resolve": resolve}
        cont = data["continue"]
        token = json.dumps(cont, sort_keys=True)
        if not isinstance(cont, dict) or token in seen_continues:
            # the API must hand back a new position each time, or the batch never ends
            raise DownloadError(f"{where}: 'continue' {token} does not advance; stopping the batch")
        seen_continues.add(token)


def page_to_record(page: dict, requested: str, api_url: str) -> dict:
    revision = (page.get("revisions") or [{}])[0]
    wiki_root = api_url.rsplit("/w/api.php", 1)[0]
    return {
        "title": page["title"],
        "requested_title": requested,
        "source": "api",
        "sections": split_wiki_sections(page.get("extract", "")),
        "revision": revision.get("revid"),
        "timestamp": revision.get("timestamp"),
        "url": f"{wiki_root}/wiki/{quote(page['title'].replace(' ', '_'))}",
    }


def fetch_titles(
    titles: list[str], params: DownloadParams, cache_dir: Path, sleep: Callable[[float], None] = time.sleep
) -> tuple[list[dict], list[str]]:
    """Records for `titles` (cached or fetched) and the titles that do not exist."""
    cache = ArticleCache(cache_dir)
    todo = [t for t in titles if cache.get(t) is None]
    log.info("titles=%d cached=%d to_fetch=%d", len(titles), len(titles) - len(todo), len(todo))
    missing: list[str] = []
    client = MediaWikiClient(params, sleep=sleep)
    try:
        with progress(total=len(todo), desc="download", unit="article") as bar:
            for start in range(0, len(todo), params.batch_size):
                batch = todo[start : start + params.batch_size]
                result = query_batch(client, batch)
                for requested in batch:
                    page = result["pages"].get(result["resolve"][requested])
                    if page is None or page.get("missing") or page.get("invalid") or not page.get("extract"):
                        missing.append(requested)
                    else:
                        cache.put(requested, page_to_record(page, requested, params.api_url))
                bar.update(len(batch))
    finally:
        client.close()
    records = [r for r in (cache.get(t) for t in titles) if r is not None]
    return records, missing
