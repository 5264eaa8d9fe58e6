import http.server
import threading

import pytest

from training.live import STUDIO_OPT_IN, open_live


@pytest.fixture
def studio(monkeypatch, tmp_path):
    """A fake DVC Studio on 127.0.0.1 that records every request, and a token pointing at it,
    as a user with a Studio token in the environment would have."""
    requests = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self):
            requests.append((self.path, self.rfile.read(int(self.headers.get("Content-Length", 0)))))
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(b"{}")

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    monkeypatch.chdir(tmp_path)  # outside any DVC repo: only the environment speaks
    monkeypatch.setenv("DVC_STUDIO_TOKEN", "isat_fake_token")
    monkeypatch.setenv("DVC_STUDIO_URL", f"http://127.0.0.1:{server.server_port}")
    monkeypatch.setenv("DVC_STUDIO_REPO_URL", "git@example.com:someone/ww2lm.git")
    monkeypatch.delenv("DVC_STUDIO_OFFLINE", raising=False)
    monkeypatch.delenv(STUDIO_OPT_IN, raising=False)
    yield requests
    server.shutdown()


def log_two_steps(folder):
    live = open_live(folder)
    live.log_params({"lr": 0.004})
    for loss in (7.0, 6.5):
        live.log_metric("train/loss", loss)
        live.next_step()
    live.end()


def test_dvclive_never_talks_to_studio_by_default_even_with_a_token(studio, tmp_path):
    log_two_steps(tmp_path / "dvclive")
    assert studio == []
    assert (tmp_path / "dvclive/metrics.json").exists()  # the local logging still happens


def test_studio_is_reached_only_after_the_documented_opt_in(studio, tmp_path, monkeypatch):
    monkeypatch.setenv(STUDIO_OPT_IN, "1")
    log_two_steps(tmp_path / "dvclive")
    assert studio, "with the opt-in the fake Studio should have been sent the run"
