"""Secrets never printed: store URLs with a password (malformed ones too, and URLs of
other databases) are one line with the password masked; a tracking URL with credentials
works against a real `mlflow server` behind HTTP basic auth on 127.0.0.1, and its
password appears in no output, no file of the results and no MLflow param."""

from __future__ import annotations

import base64
import http.client
import http.server
import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from clusterkit import write_spec
from servers import MlflowServer, free_port

from harness.masking import mask, strip_credentials, url_secret

HARNESS = [sys.executable, "-m", "harness.cli"]
SECRET = "s3cr#t"  # '#' must be percent-encoded in a URL: %23


def harness(*args: str, cwd: Path, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([*HARNESS, *args], cwd=cwd, capture_output=True, text=True,
                          timeout=600, env={**os.environ, **(env or {})})


def test_mask_hides_passwords_of_any_url_even_malformed() -> None:
    cases = {
        "mysql://u:s3cr@t@db:3306/x": "mysql://u:***@db:3306/x",
        "postgresql://u:secret@[::1/db": "postgresql://u:***@[::1/db",
        "at http://alice:pw@127.0.0.1:5000/x, then": "at http://alice:***@127.0.0.1:5000/x, then",
        "host=a password=secret dbname=x": "host=a password=*** dbname=x",
        "postgresql://harness@127.0.0.1:5/db": "postgresql://harness@127.0.0.1:5/db",
    }
    for text, masked in cases.items():
        assert mask(text) == masked
    assert url_secret("postgresql://u:sec%zzret@h/db") == "sec%zzret"
    assert mask('missing "=" after "sec%zzret@h"', ["sec%zzret"]) == 'missing "=" after "***@h"'
    assert strip_credentials("http://al%40ce:p%3Aw@h:5/x") == ("http://h:5/x", "al@ce", "p:w")


@pytest.mark.parametrize("url", [
    f"mysql://u:{SECRET}@127.0.0.1:3306/x",
    f"postgresql+asyncpg://u:{SECRET}@127.0.0.1:5432/x",
    f"postgresql://u:{SECRET}@[::1/x",
    f"postgresql://u:{SECRET}@127.0.0.1:5432/x?foo=bar",
    f"postgresql://u:{SECRET}%zz@127.0.0.1:5432/x",
    f"postgresql://u:{SECRET}@127.0.0 .1:5432/x",
    "postgresql+psycopg://u:{secret}@127.0.0.1:{port}/x",  # valid, nothing listening
])
def test_a_bad_or_unreachable_store_url_is_one_line_without_its_password(tmp_path, url
                                                                         ) -> None:
    pytest.importorskip("psycopg")
    url = url.format(secret=SECRET, port=free_port())
    spec = write_spec(tmp_path, "secret", sizes=[2], seeds=[0], epochs=10, runs=2)
    commands = [["run", str(spec), "--store", url]]
    if url.startswith("postgresql+psycopg"):  # the other commands connect the same way
        commands += [["worker", "--store", url], ["status", "secret", "--store", url]]
    for args in commands:
        done = harness(*args, cwd=tmp_path)
        assert done.returncode == 1, (args, done.stderr)
        lines = done.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: "), (args, done.stderr)
        assert SECRET not in done.stderr + done.stdout and "s3cr" not in done.stderr
        assert "***" in lines[0]


def test_a_store_spec_field_with_a_password_is_masked_in_validate(tmp_path) -> None:
    spec = write_spec(tmp_path, "field", store=f"mysql://u:{SECRET}@h/x")
    done = harness("validate", str(spec), cwd=tmp_path)
    assert done.returncode == 1 and SECRET not in done.stderr and "***" in done.stderr


# ---- tracking with credentials -------------------------------------------------------------
class BasicAuthProxy:
    """A reverse proxy on 127.0.0.1 that lets through only requests with HTTP basic auth
    ``user:password`` (401 otherwise) to ``upstream`` (host, port)."""

    def __init__(self, upstream: tuple[str, int], user: str, password: str) -> None:
        expected = "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()
        self.seen: list[str] = []  # the Authorization headers received (any)
        proxy = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def _forward(self) -> None:
                proxy.seen.append(self.headers.get("Authorization") or "")
                if self.headers.get("Authorization") != expected:
                    self.send_response(401)
                    self.send_header("WWW-Authenticate", 'Basic realm="mlflow"')
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                conn = http.client.HTTPConnection(*upstream, timeout=60)
                headers = {k: v for k, v in self.headers.items()
                           if k.lower() not in ("authorization", "host", "connection")}
                conn.request(self.command, self.path, body or None, headers)
                reply = conn.getresponse()
                data = reply.read()
                self.send_response(reply.status)
                for key, value in reply.getheaders():
                    if key.lower() not in ("transfer-encoding", "connection",
                                           "content-length"):
                        self.send_header(key, value)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)
                conn.close()

            do_GET = do_POST = do_PATCH = do_DELETE = _forward

            def log_message(self, *args: object) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.mark.cluster_slow  # a real `mlflow server` (tens of seconds to start)
def test_a_tracking_url_with_credentials_works_and_its_password_is_never_shown(tmp_path
                                                                                ) -> None:
    from mlflow import MlflowClient

    server = MlflowServer(f"sqlite:///{tmp_path / 'backend.db'}", tmp_path)
    proxy = BasicAuthProxy(("127.0.0.1", server.port), "alice", SECRET)
    try:
        uri = f"http://alice:{SECRET.replace('#', '%23')}@127.0.0.1:{proxy.port}"
        spec = write_spec(tmp_path, "authed", sizes=[2], seeds=[0], epochs=20, runs=2,
                          tracking=True)
        done = harness("run", str(spec), "--tracking-uri", uri, cwd=tmp_path)
        assert done.returncode == 0, done.stderr[-2000:]
        assert "warning" not in done.stderr, done.stderr  # the health check passed
        shown = done.stdout + done.stderr
        assert SECRET not in shown and "s3cr" not in shown
        results = tmp_path / "results" / "authed"
        for path in results.rglob("*"):
            if path.is_file():
                assert b"s3cr" not in path.read_bytes(), path
        runs = MlflowClient(tracking_uri=server.uri).search_runs(
            [MlflowClient(tracking_uri=server.uri).get_experiment_by_name("authed")
             .experiment_id])
        assert len([r for r in runs if "cell_id" in r.data.tags]) == 2
        for run in runs:
            assert not any("s3cr" in v for v in run.data.params.values())
            assert not any("s3cr" in v for v in run.data.tags.values())

        wrong = uri.replace("s3cr", "nope")
        spec2 = write_spec(tmp_path, "refused", sizes=[2], seeds=[0], epochs=20, runs=2,
                           tracking=True)
        done = harness("run", str(spec2), "--tracking-uri", wrong, cwd=tmp_path)
        assert done.returncode == 0  # untracked, results safe
        warnings = [x for x in done.stderr.splitlines() if x.startswith("warning")]
        assert len(warnings) == 1 and "HTTP 401" in warnings[0], done.stderr
        assert "nope" not in done.stderr and "alice:***@" in warnings[0]
    finally:
        proxy.stop()
        server.stop()
