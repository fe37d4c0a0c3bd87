"""``dvc import-url`` outputs from a local path or an http(s) URL stream from wherever
``dvc pull`` reads them: the project's remote once pushed, else (``--no-download``) the source,
checked against what the ``.dvc`` file records."""

from __future__ import annotations

import shutil
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from dvc_stream.testing.repos import file_content

from .conftest import last_json, md5, stream_python, write_script
from .test_imports import LISTDIR, READ, WALK

SOURCE = {f"sub/f{i}.txt": file_content(i, "local", 100 + i) for i in range(3)}
SOURCE["top.bin"] = file_content(9, "top", 2000)


def _expected(files: dict[str, bytes]) -> dict[str, list]:
    return {rel: [len(data), md5(data)] for rel, data in files.items()}


@pytest.fixture
def source_dir(tmp_path):
    root = tmp_path / "source"
    for rel, data in SOURCE.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(data)
    return root


def _import_url(repo, url: str, out: str, *flags: str) -> None:
    repo._import("import-url", url, out, *flags, out=out)


def _streamed(repo, tmp_path, script_text: str, *args: str, check: bool = True):
    """A fresh clone of ``repo`` where a program ran under ``dvc stream``: (clone, its run)."""
    clone = repo.clone()
    script = write_script(tmp_path, "program.py", script_text)
    return clone, stream_python(clone, script, *args, check=check)


def _warnings(proc) -> list[str]:
    return [line for line in proc.stderr.splitlines() if line.startswith("WARNING")]


# -- a local path ---------------------------------------------------------------------------------


def test_local_directory_imported_and_pushed_streams_from_the_remote(
    dvc_repo, source_dir, tmp_path
):
    _import_url(dvc_repo, str(source_dir), "data/local")
    dvc_repo.push()
    shutil.rmtree(source_dir)  # NOTE: `dvc pull` reads the pushed copy, never the source

    clone, proc = _streamed(dvc_repo, tmp_path, WALK, "data/local")

    assert last_json(proc) == _expected(SOURCE)
    assert clone.tracked_files("data/local") == SOURCE
    assert not _warnings(proc), proc.stderr


@pytest.mark.parametrize("kind", ["file", "dir"])
def test_local_path_imported_with_no_download_streams_from_it(
    dvc_repo, source_dir, tmp_path, kind
):
    url, files = str(source_dir), SOURCE
    if kind == "file":
        url, files = str(source_dir / "top.bin"), {"data/local": SOURCE["top.bin"]}
    _import_url(dvc_repo, url, "data/local", "--no-download")
    # NOTE: DVC 3.67.1 fetches nothing of a --no-download import of a local directory (`dvc pull`
    # fails: "Checkout failed"): the streamed files are compared with the source's instead
    pulls = kind == "file"
    pulled = dvc_repo.clone()
    if pulls:
        pulled.dvc("pull", "data/local")

    clone, proc = _streamed(dvc_repo, tmp_path, WALK, "data/local")

    assert proc.returncode == 0, proc.stderr
    assert not _warnings(proc), proc.stderr
    assert last_json(proc) == _expected(files)
    if pulls:
        pulled_bytes = (pulled.root / "data/local").read_bytes()
        assert (clone.root / "data/local").read_bytes() == pulled_bytes
    else:
        assert clone.tracked_files("data/local") == SOURCE
    assert "local" not in clone.git("status", "--porcelain").stdout  # the .dvc file is unchanged
    if pulls:
        # NOTE: DVC's own commands find the files where `dvc pull` leaves them
        assert clone.dvc("data", "status").stdout == pulled.dvc("data", "status").stdout
        assert clone.dvc("checkout").stdout == pulled.dvc("checkout").stdout
    else:
        assert "data/local" not in clone.dvc("data", "status").stdout
        assert clone.dvc("checkout").returncode == 0  # nothing missing, nothing to remove


@pytest.mark.parametrize("kind", ["file", "dir"])
def test_local_path_changed_since_the_import_is_refused(dvc_repo, source_dir, tmp_path, kind):
    url = str(source_dir / "top.bin") if kind == "file" else str(source_dir)
    _import_url(dvc_repo, url, "data/local", "--no-download")
    (source_dir / "top.bin").write_bytes(b"changed")

    clone, proc = _streamed(dvc_repo, tmp_path, LISTDIR, "data/local")

    assert proc.stdout.startswith("FileNotFoundError"), proc.stdout
    assert _warnings(proc) == [
        f"WARNING: 'data/local' is not streamed: '{url}' changed since it was imported; "
        "`dvc update data/local` records the new one"
    ], proc.stderr
    assert not (clone.root / "data/local").exists()
    assert clone.dvc("pull", "data/local", check=False).returncode != 0  # nor does DVC fetch it


# -- an http(s) URL -------------------------------------------------------------------------------


class _Files(BaseHTTPRequestHandler):
    """Files by URL path, with their size and (if the server gives them) an ETag."""

    def do_HEAD(self) -> None:
        self._answer(body=False)

    def do_GET(self) -> None:
        self._answer(body=True)

    def _answer(self, body: bool) -> None:
        server = self.server
        server.log.append((self.command, self.path))
        data = server.files.get(self.path)
        if data is None:
            self.send_error(404)
            return
        self.send_response(200)
        self.send_header("Content-Length", str(len(data)))
        if server.etags:
            self.send_header("ETag", f'"{md5(data)}"')
        self.end_headers()
        if body:
            self.wfile.write(data)

    def log_message(self, *args) -> None:
        pass


@pytest.fixture
def http_server():
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Files)
    server.files, server.etags, server.log = {}, True, []
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()
    thread.join()


def _url(server, path: str) -> str:
    return f"http://127.0.0.1:{server.server_address[1]}{path}"


def test_http_file_imported_with_no_download_streams_from_it(dvc_repo, http_server, tmp_path):
    data = file_content(3, "http", 5000)
    http_server.files["/one.bin"] = data
    _import_url(dvc_repo, _url(http_server, "/one.bin"), "data/one.bin", "--no-download")
    pulled = dvc_repo.clone()
    pulled.dvc("pull", "data/one.bin")
    http_server.log.clear()

    clone, proc = _streamed(dvc_repo, tmp_path, READ, "data/one.bin")

    assert proc.returncode == 0, proc.stderr
    assert not _warnings(proc), proc.stderr
    assert last_json(proc) == {"data/one.bin": md5(data)}
    assert (clone.root / "data/one.bin").read_bytes() == (
        pulled.root / "data/one.bin"
    ).read_bytes()
    assert [m for m, _ in http_server.log].count("GET") == 1, http_server.log
    assert "one.bin" not in clone.git("status", "--porcelain").stdout
    # NOTE: DVC's own commands find the file where `dvc pull` leaves it
    assert clone.dvc("data", "status").stdout == pulled.dvc("data", "status").stdout
    assert clone.dvc("checkout").stdout == pulled.dvc("checkout").stdout

    http_server.log.clear()  # a second run reads the copy DVC keeps, after the same check
    (clone.root / "data/one.bin").unlink()
    again = stream_python(clone, write_script(tmp_path, "again.py", READ), "data/one.bin")
    assert last_json(again) == {"data/one.bin": md5(data)}
    assert [m for m, _ in http_server.log] == ["HEAD"], http_server.log


def test_http_file_changed_since_the_import_is_refused(dvc_repo, http_server, tmp_path):
    http_server.files["/one.bin"] = file_content(3, "http", 5000)
    url = _url(http_server, "/one.bin")
    _import_url(dvc_repo, url, "data/one.bin", "--no-download")
    http_server.files["/one.bin"] = b"changed"
    http_server.log.clear()

    clone, proc = _streamed(dvc_repo, tmp_path, READ, "data/one.bin", check=False)

    assert proc.returncode != 0
    assert _warnings(proc) == [
        f"WARNING: 'data/one.bin' is not streamed: '{url}' changed since it was imported; "
        "`dvc update data/one.bin` records the new one"
    ], proc.stderr
    assert not (clone.root / "data/one.bin").exists()
    assert [m for m, _ in http_server.log if m == "GET"] == []  # nothing of it was fetched
    assert clone.dvc("pull", "data/one.bin", check=False).returncode != 0


def test_http_file_without_an_etag_is_refused(dvc_repo, http_server, tmp_path):
    http_server.files["/one.bin"] = file_content(3, "http", 5000)
    http_server.etags = False
    url = _url(http_server, "/one.bin")
    _import_url(dvc_repo, url, "data/one.bin", "--no-download")

    clone, proc = _streamed(dvc_repo, tmp_path, READ, "data/one.bin", check=False)

    assert proc.returncode != 0
    assert _warnings(proc) == [
        f"WARNING: 'data/one.bin' is not streamed: '{url}' gives no ETag to check it against "
        "the one recorded at import (`dvc pull data/one.bin` cannot fetch it either)"
    ], proc.stderr
    assert clone.dvc("pull", "data/one.bin", check=False).returncode != 0
