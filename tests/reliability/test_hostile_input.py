"""Requests a fuzzer rarely makes: absurd nesting and sizes, broken encodings, lying framing, path
tricks in names, slow and idle clients. Each gets a clear answer (OpenAI's error shape where there
is a body to send), stores nothing broken, and the server keeps serving."""

from __future__ import annotations

import io
import socket
import time
from collections.abc import Iterator

import httpx
import openai
import pytest

from tests.conftest import API_KEY, Server, start_server, stop_server
from tests.reliability.authz import CONFIG
from tests.spec import validate

AUTH = {"Authorization": f"Bearer {API_KEY}", "content-type": "application/json"}
CHAT = b'{"model": "fake-chat", "messages": [{"role": "user", "content": %s}]}'


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    found = start_server(tmp_path_factory.mktemp("hostile"), CONFIG | {"request_head_timeout_s": 3})
    yield found
    stop_server(found)


def _post(server: Server, path: str, raw: bytes) -> httpx.Response:
    return httpx.post(f"{server.base_url}{path}", content=raw, headers=AUTH, timeout=120)


def _refused(answer: httpx.Response, status: int = 400, param: str | None = None) -> None:
    assert answer.status_code == status, answer.text[:300]
    validate("ErrorResponse", answer.json())
    if param is not None:
        assert answer.json()["error"]["param"] == param


def _still_serving(server: Server) -> None:
    answer = _post(server, "/chat/completions", CHAT % b'"still there?"')
    assert answer.status_code == 200, answer.text[:300]


def test_json_nested_ten_thousand_levels(server: Server) -> None:
    _refused(_post(server, "/chat/completions", CHAT % (b"[" * 10_000 + b"]" * 10_000)))
    deep_object = b'{"a":' * 10_000 + b"1" + b"}" * 10_000
    _refused(_post(server, "/embeddings", b'{"model": "fake-embed", "input": ' + deep_object + b"}"))
    _still_serving(server)


def test_ten_megabyte_strings_where_short_ones_belong(server: Server) -> None:
    huge = b'"' + b"x" * 10_000_000 + b'"'
    _refused(_post(server, "/chat/completions", b'{"model": %s, "messages": []}' % huge), 400, "messages")
    answer = _post(server, "/chat/completions", CHAT % huge)  # a prompt of millions of tokens
    _refused(answer, 400)
    assert answer.json()["error"]["code"] == "context_length_exceeded"
    unknown = _post(server, "/embeddings", b'{"model": %s, "input": "hi"}' % huge)
    _refused(unknown, 404, "model")
    assert len(unknown.content) < 10_000  # the name is not echoed back whole
    _refused(_post(server, "/vector_stores", b'{"metadata": {"k": %s}}' % huge), 400, "metadata.k")
    _refused(_post(server, "/embeddings", b'{"model": "fake-embed", "input": "hi", %s: 1}' % huge), 400)
    _still_serving(server)


def test_invalid_utf8_and_nul_bytes(server: Server) -> None:
    _refused(_post(server, "/chat/completions", CHAT % b'"caf\xe9 \xff\xfe"'))  # Latin-1, not UTF-8
    _refused(_post(server, "/chat/completions", CHAT % b'"a\x00b"'))  # a raw NUL: not JSON
    escaped = _post(server, "/chat/completions", CHAT % b'"a\\u0000b"')  # an escaped one is a character
    assert escaped.status_code == 200
    # Half a UTF-16 surrogate pair, escaped: valid JSON, but no Unicode text (it was a 500).
    for lone in (b'"\\ud800 x"', b'"x \\udfff"', b'"\\udbff\\ud800"'):
        _refused(_post(server, "/chat/completions", CHAT % lone))
    _refused(_post(server, "/vector_stores", b'{"metadata": {"\\ud800": "x"}}'))  # in a key
    paired = _post(server, "/chat/completions", CHAT % b'"\\ud83d\\ude00 and \\\\ud800"')  # an emoji; a backslash
    assert paired.status_code == 200, paired.text
    _still_serving(server)


def test_duplicate_keys_take_the_last_value(server: Server) -> None:
    answer = _post(server, "/chat/completions", b'{"model": "nope", "model": "fake-chat", "messages": '
                                                b'[{"role": "user", "content": "hi"}]}')  # fmt: skip
    assert answer.status_code == 200 and answer.json()["model"] == "fake-chat"


def test_numbers_out_of_range(server: Server) -> None:
    _refused(_post(server, "/chat/completions", CHAT[:-1] % b'"hi"' + b', "temperature": 1e999}'), 400, "temperature")
    _refused(_post(server, "/chat/completions", CHAT[:-1] % b'"hi"' + b', "max_tokens": 1e999}'), 400, "max_tokens")
    _refused(_post(server, "/chat/completions", CHAT[:-1] % b'"hi"' + b', "n": -1e308}'), 400, "n")
    _refused(_post(server, "/chat/completions", CHAT[:-1] % b'"hi"' + b', "seed": 1' + b"0" * 400 + b"}"), 400, "seed")
    _still_serving(server)


def _raw(server: Server, request: bytes, hang_up: bool = False, wait_s: float = 60) -> bytes:
    """Send bytes as they are; return what the server answers before closing (or within wait_s).
    `hang_up` shuts the sending side after the request, which servers (uvicorn, nginx, Go's) take as
    the client leaving: the request is dropped, so only a test about leaving may do it. Otherwise
    the request must say `connection: close` for the server to close once it has answered."""
    host, port = server.root.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=wait_s) as s:
        s.sendall(request)
        if hang_up:
            s.shutdown(socket.SHUT_WR)
        chunks = []
        while chunk := s.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


def _multipart(filename: bytes, declared: int | None = None) -> bytes:
    """POST /v1/files as raw bytes: a purpose and a file, with `declared` as its Content-Length."""
    boundary = b"b0undary"
    body = (b"--" + boundary + b'\r\ncontent-disposition: form-data; name="purpose"\r\n\r\nassistants\r\n--' + boundary
            + b'\r\ncontent-disposition: form-data; name="file"; filename="' + filename
            + b'"\r\ncontent-type: text/plain\r\n\r\nhello\r\n--' + boundary + b"--\r\n")  # fmt: skip
    head = (b"POST /v1/files HTTP/1.1\r\nhost: x\r\nauthorization: Bearer " + API_KEY.encode()
            + b"\r\nconnection: close\r\ncontent-type: multipart/form-data; boundary=" + boundary
            + b"\r\ncontent-length: %d\r\n\r\n")  # fmt: skip
    return head % (len(body) if declared is None else declared) + body


def test_a_multipart_upload_whose_declared_size_lies(server: Server) -> None:
    size = len(_multipart(b"a.txt").partition(b"\r\n\r\n")[2])
    longer = _raw(server, _multipart(b"a.txt", size + 1000), hang_up=True)  # promises more than it sends
    assert longer == b"" or longer.startswith(b"HTTP/1.1 400")
    shorter = _raw(server, _multipart(b"a.txt", size // 2), hang_up=True)  # the body is cut where the length says
    assert shorter.startswith(b"HTTP/1.1 400"), shorter[:200]
    client = openai.OpenAI(base_url=server.base_url, api_key=API_KEY, max_retries=0)
    assert all(f.status == "processed" for f in client.files.list().data)  # nothing half-stored
    upload = client.uploads.create(filename="u.txt", bytes=10, mime_type="text/plain", purpose="assistants")
    with pytest.raises(openai.APIStatusError) as too_big:
        client.uploads.parts.create(upload.id, data=b"x" * 20)  # a part larger than the whole it declared
    assert too_big.value.status_code == 413
    parts = [client.uploads.parts.create(upload.id, data=b"x" * 6).id for _ in range(2)]  # 12 bytes, not 10
    with pytest.raises(openai.BadRequestError) as err:
        client.uploads.complete(upload.id, part_ids=parts)
    assert "10" in err.value.message
    _still_serving(server)


def test_file_names_with_paths_and_nul_bytes(server: Server) -> None:
    client = openai.OpenAI(base_url=server.base_url, api_key=API_KEY, max_retries=0)
    stored = client.files.create(file=("../../../etc/passwd.txt", io.BytesIO(b"not yours")), purpose="assistants")
    assert stored.filename == "passwd.txt"  # the name, never a path
    assert client.files.content(stored.id).read() == b"not yours"
    assert not (server.data_dir.parent / "etc").exists()
    answer = _raw(server, _multipart(b"a\x00b.txt"))  # a raw NUL (the SDK would send it as %00)
    assert answer.startswith(b"HTTP/1.1 400") and b'"param":"file"' in answer, answer[-300:]
    with pytest.raises(openai.BadRequestError):
        client.uploads.create(filename="../a\x00.txt", bytes=1, mime_type="text/plain", purpose="assistants")
    _still_serving(server)


def test_a_slow_client_is_cut_off_and_holds_no_one_up(server: Server) -> None:
    host, port = server.root.removeprefix("http://").split(":")
    slow = socket.create_connection((host, int(port)), timeout=60)
    silent = socket.create_connection((host, int(port)), timeout=60)
    try:
        request = b"GET /healthz HTTP/1.1\r\nhost: x\r\n" + b"x-pad: " + b"a" * 50
        started, answer = time.monotonic(), b""
        for byte in request:  # one byte every 0.1 s: the head never completes in time
            try:
                slow.sendall(bytes([byte]))
            except OSError:
                break  # the server closed it
            _still_serving(server) if byte == request[5] else time.sleep(0.1)
        slow.settimeout(30)
        answer = slow.recv(1024)
        assert answer.startswith(b"HTTP/1.1 408") or answer == b"", answer
        assert time.monotonic() - started < 30
        assert silent.recv(1024).startswith(b"HTTP/1.1 408")  # a connection that never says anything
    finally:
        slow.close()
        silent.close()
    _still_serving(server)


def test_a_thousand_idle_keep_alive_connections(server: Server) -> None:
    host, port = server.root.removeprefix("http://").split(":")
    idle = []
    try:
        for _ in range(1000):
            s = socket.create_connection((host, int(port)), timeout=60)
            s.sendall(b"GET /healthz HTTP/1.1\r\nhost: x\r\n\r\n")  # served, then left open
            idle.append(s)
        for s in idle:
            assert s.recv(4096).startswith(b"HTTP/1.1 200")
        started = time.monotonic()
        _still_serving(server)  # a real request among them
        assert time.monotonic() - started < 30
        deadline = time.monotonic() + 60
        for s in idle[:20]:  # uvicorn closes idle keep-alive connections (after 5 s)
            s.settimeout(max(1.0, deadline - time.monotonic()))
            assert s.recv(4096) == b""
    finally:
        for s in idle:
            s.close()
