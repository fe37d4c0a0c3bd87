"""LatencyProxy against the real moto server: counting, delay, bandwidth, faults, dvc pull."""

import http.server
import socket
import threading
import time

import pytest
from botocore.exceptions import ClientError, ConnectionClosedError, ResponseStreamingError

from dvc_stream.testing.proxy import LatencyProxy

BODY = bytes(range(256)) * 400  # 100 KiB


@pytest.fixture
def bucket(moto_server):
    name = moto_server.new_bucket()
    moto_server.client().put_object(Bucket=name, Key="obj", Body=BODY)
    return name


@pytest.fixture
def client(moto_server, latency_proxy):
    """boto3 through the proxy, retries off so each fault is seen once."""
    return moto_server.client(
        endpoint_url=latency_proxy.endpoint_url, retries={"total_max_attempts": 1}
    )


def _timed_get(client, bucket):
    start = time.monotonic()
    data = client.get_object(Bucket=bucket, Key="obj")["Body"].read()
    return time.monotonic() - start, data


def test_counts_get_and_put(client, bucket, latency_proxy):
    assert client.get_object(Bucket=bucket, Key="obj")["Body"].read() == BODY
    assert latency_proxy.requests == 1
    assert latency_proxy.requests_by_method == {"GET": 1}
    assert latency_proxy.request_log == [("GET", f"/{bucket}/obj")]
    assert len(BODY) < latency_proxy.bytes_down < len(BODY) + 2000

    latency_proxy.reset_counters()
    client.put_object(Bucket=bucket, Key="new", Body=b"GET / HTTP/1.1\r\n\r\n" * 5000)
    assert latency_proxy.requests_by_method == {"PUT": 1}
    assert latency_proxy.bytes_up > 5000 * 18
    assert latency_proxy.bytes_down < 2000


class _EchoHandler(http.server.BaseHTTPRequestHandler):
    """Keep-alive HTTP/1.1 upstream that answers each request with its method, path and body."""

    protocol_version = "HTTP/1.1"

    def _answer(self):
        if "chunked" in self.headers.get("Transfer-Encoding", ""):
            body = b""
            while size := int(self.rfile.readline().strip(), 16):
                body += self.rfile.read(size + 2)[:-2]
            self.rfile.readline()
        else:
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        reply = f"{self.command} {self.path} ".encode() + body
        self.send_response(200)
        self.send_header("Content-Length", str(len(reply)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(reply)

    do_GET = do_PUT = do_HEAD = _answer

    def log_message(self, *args):
        pass


@pytest.fixture
def echo_proxy():
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _EchoHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    with LatencyProxy(*server.server_address[:2]) as proxy:
        yield proxy
    server.shutdown()


def test_counts_pipelined_and_chunked_requests(echo_proxy):
    body = b"PUT /fake HTTP/1.1\r\nContent-Length: 3\r\n\r\n"
    wire = (
        b"HEAD /a HTTP/1.1\r\nHost: x\r\n\r\n"
        + b"PUT /b HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % len(body)
        + body
        + b"PUT /c HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
        + b"5\r\nhello\r\n0\r\n\r\n"
        + b"GET /d HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    with socket.create_connection((echo_proxy.host, echo_proxy.port), timeout=10) as sock:
        sock.sendall(wire)
        received = b""
        while chunk := sock.recv(65536):
            received += chunk
    assert echo_proxy.request_log == [("HEAD", "/a"), ("PUT", "/b"), ("PUT", "/c"), ("GET", "/d")]
    assert echo_proxy.requests_by_method == {"HEAD": 1, "PUT": 2, "GET": 1}
    assert echo_proxy.bytes_up == len(wire)
    assert received.count(b"HTTP/1.1 200") == 4
    assert b"PUT /b " + body in received
    assert b"PUT /c hello" in received
    assert received.endswith(b"GET /d ")


def test_status_fault_keeps_later_responses_in_order(echo_proxy):
    echo_proxy.add_fault("status", path_contains="/b", status=500)
    wire = b"GET /a HTTP/1.1\r\nHost: x\r\n\r\nGET /b HTTP/1.1\r\nHost: x\r\n\r\n"
    with socket.create_connection((echo_proxy.host, echo_proxy.port), timeout=10) as sock:
        sock.sendall(wire)
        received = b""
        while chunk := sock.recv(65536):
            received += chunk
    first, _, second = received.partition(b"GET /a ")
    assert first.startswith(b"HTTP/1.1 200")
    assert second.startswith(b"HTTP/1.1 500") and b"<Code>InternalError</Code>" in second


def test_delay_is_applied(client, bucket, latency_proxy):
    _timed_get(client, bucket)  # warm the connection
    fast, _ = _timed_get(client, bucket)
    latency_proxy.rtt_ms = 100
    slow, data = _timed_get(client, bucket)
    assert data == BODY
    assert slow >= 0.095
    assert slow > fast


def test_bandwidth_cap(client, bucket, latency_proxy):
    latency_proxy.bandwidth_mbit = 8  # 100 KiB -> ~0.1 s
    elapsed, data = _timed_get(client, bucket)
    assert data == BODY
    assert elapsed >= 0.09


def test_status_fault(client, bucket, latency_proxy):
    latency_proxy.add_fault("status", method="GET", path_contains="/obj", status=503)
    with pytest.raises(ClientError) as excinfo:
        client.get_object(Bucket=bucket, Key="obj")
    assert excinfo.value.response["ResponseMetadata"]["HTTPStatusCode"] == 503
    assert _timed_get(client, bucket)[1] == BODY  # fired once, then gone


def test_fault_matches_method_and_path(client, bucket, latency_proxy):
    latency_proxy.add_fault("status", method="PUT", times=2)
    latency_proxy.add_fault("status", path_contains="/other")
    assert _timed_get(client, bucket)[1] == BODY
    for _ in range(2):
        with pytest.raises(ClientError):
            client.put_object(Bucket=bucket, Key="x", Body=b"1")
    client.put_object(Bucket=bucket, Key="x", Body=b"1")
    latency_proxy.clear_faults()
    client.put_object(Bucket=bucket, Key="other", Body=b"1")


@pytest.mark.parametrize("after_bytes", [0, 5000])
def test_reset_fault(client, bucket, latency_proxy, after_bytes):
    latency_proxy.add_fault("reset", method="GET", after_bytes=after_bytes)
    with pytest.raises((ConnectionClosedError, ResponseStreamingError)):
        _timed_get(client, bucket)
    assert _timed_get(client, bucket)[1] == BODY


def test_drop_fault_truncates_body(client, bucket, latency_proxy):
    latency_proxy.add_fault("drop", method="GET", after_bytes=10)
    with pytest.raises(ResponseStreamingError, match="IncompleteRead"):
        _timed_get(client, bucket)
    assert _timed_get(client, bucket)[1] == BODY


def test_stall_fault(client, bucket, latency_proxy):
    latency_proxy.add_fault("stall", method="GET", stall_s=0.3)
    elapsed, data = _timed_get(client, bucket)
    assert data == BODY
    assert elapsed >= 0.3


def test_unknown_fault_kind(latency_proxy):
    with pytest.raises(ValueError, match="unknown fault"):
        latency_proxy.add_fault("explode")


def test_start_stop_context(moto_server):
    with LatencyProxy(moto_server.host, moto_server.port, rtt_ms=10) as proxy:
        assert proxy.endpoint_url.startswith("http://127.0.0.1:")
    proxy.stop()  # idempotent


def test_dvc_pull_through_proxy(dvc_repo, latency_proxy):
    ds = dvc_repo.make_dataset(nfiles=16, depth=1, fanout=4)
    dvc_repo.wipe()
    dvc_repo.set_endpoint(latency_proxy.endpoint_url)
    latency_proxy.rtt_ms = 10
    latency_proxy.reset_counters()

    dvc_repo.dvc("pull")

    assert dvc_repo.tracked_files(ds.path) == ds.files
    file_gets = [p for m, p in latency_proxy.request_log if m == "GET" and _is_file_object(p)]
    assert len(file_gets) == len(set(file_gets)) == ds.nfiles  # one GET per file object
    # the rest is a small constant: DVC reads the .dir object (4 GETs + 4 HEADs) and lists once
    overhead = latency_proxy.requests - len(file_gets)
    assert 1 <= overhead <= 12, latency_proxy.request_log


def _is_file_object(path):
    return "/files/md5/" in path and not path.endswith(".dir")
