"""A Hugging Face Hub stand-in on 127.0.0.1: enough of /{repo}/resolve/{revision}/{file} for hf_hub_download."""
import hashlib
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path


class FakeHub:
    def __init__(self):
        self.files = {}  # (repo_id, revision, filename) -> bytes
        self.commits = {}  # (repo_id, revision) -> commit hash
        self.requests = []  # (method, path, Authorization header) of every request received
        self.server = ThreadingHTTPServer(('127.0.0.1', 0), self._handler())
        self.url = f'http://127.0.0.1:{self.server.server_address[1]}'
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def add_folder(self, repo_id: str, folder, revision: str = 'main', commit: str = None) -> str:
        commit = commit or hashlib.sha1(f'{repo_id}@{revision}'.encode()).hexdigest()
        self.commits[(repo_id, revision)] = commit
        self.commits[(repo_id, commit)] = commit
        for path in Path(folder).iterdir():
            for rev in (revision, commit):
                self.files[(repo_id, rev, path.name)] = path.read_bytes()
        return commit

    def file_requests(self):
        return [r for r in self.requests if '/resolve/' in r[1]]

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()

    def _handler(self):
        hub = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def _respond(self, with_body: bool):
                hub.requests.append((self.command, self.path, self.headers.get('Authorization')))
                parts = self.path.split('?')[0].strip('/').split('/')
                if len(parts) < 5 or parts[2] != 'resolve':
                    return self._error(404, 'RepoNotFound')
                repo_id, revision, filename = '/'.join(parts[:2]), parts[3], '/'.join(parts[4:])
                if (repo_id, revision) not in hub.commits:
                    return self._error(404, 'RevisionNotFound' if any(r == repo_id for r, _ in hub.commits)
                                       else 'RepoNotFound')
                data = hub.files.get((repo_id, revision, filename))
                if data is None:
                    return self._error(404, 'EntryNotFound')
                self.send_response(200)
                self.send_header('X-Repo-Commit', hub.commits[(repo_id, revision)])
                self.send_header('ETag', '"' + hashlib.sha256(data).hexdigest() + '"')
                self.send_header('Content-Length', str(len(data)))
                self.end_headers()
                if with_body:
                    self.wfile.write(data)

            def _error(self, status, code):
                self.send_response(status)
                self.send_header('X-Error-Code', code)
                self.send_header('Content-Length', '0')
                self.end_headers()

            def do_HEAD(self):
                self._respond(with_body=False)

            def do_GET(self):
                self._respond(with_body=True)

        return Handler


def point_hub_client_at(monkeypatch, url: str) -> None:
    """Make huggingface_hub (already imported) send its requests to `url` for this test."""
    import huggingface_hub.constants as constants
    monkeypatch.setattr(constants, 'ENDPOINT', url)
    monkeypatch.setattr(constants, 'HUGGINGFACE_CO_URL_TEMPLATE', url + '/{repo_id}/resolve/{revision}/{filename}')
