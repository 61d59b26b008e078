"""Files, uploads, vector stores and search through the official SDK, on the real embedding model;
project isolation; a restart mid-ingestion; oversized and unsupported files."""

from __future__ import annotations

import sqlite3
import time

import httpx
import openai
import pytest

from tests.clusters import pgvector_bin_dir, throwaway_cluster
from tests.conftest import create_key, start_server, stop_server
from tests.spec import validate

DOCS = {
    "sky.md": b"# Weather notes\n\nThe sky is blue on a clear day because air scatters blue sunlight.\n",
    "bread.html": b"<html><head><style>p{}</style></head><body><h1>Baking</h1><p>Knead the dough for ten "
    b"minutes, then let the bread rise for an hour.</p></body></html>",
    "trains.txt": b"The night train to Vienna leaves platform 4 at 22:15 and arrives at 07:30.",
}


def _dump(obj) -> dict:
    return obj.model_dump(mode="json", exclude_unset=True)


def _wait_completed(client: openai.OpenAI, store_id: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        store = client.vector_stores.retrieve(store_id)
        if store.status == "completed":
            return
        time.sleep(0.2)
    raise AssertionError(f"vector store {store_id} still {store.status}: {store.file_counts}")


@pytest.fixture(scope="module")
def project_client(server) -> openai.OpenAI:
    secret = create_key({"HOMEPORT_DATA_DIR": str(server.data_dir)}, "--name", "rag", "--project", "rag")
    return openai.OpenAI(base_url=server.base_url, api_key=secret, max_retries=0, timeout=120)


@pytest.fixture(scope="module")
def uploaded(project_client) -> dict[str, str]:
    return {
        name: project_client.files.create(file=(name, data), purpose="assistants").id for name, data in DOCS.items()
    }


def test_files_create_list_retrieve_content_delete(project_client, uploaded) -> None:
    client = project_client
    f = client.files.retrieve(uploaded["sky.md"])
    validate("OpenAIFile", _dump(f))
    assert (f.filename, f.bytes, f.purpose, f.status) == ("sky.md", len(DOCS["sky.md"]), "assistants", "processed")
    assert client.files.content(f.id).read() == DOCS["sky.md"]
    page = client.files.list(purpose="assistants", limit=2, order="asc")
    validate("ListFilesResponse", _dump(page))
    assert [x.id for x in page.data] == [uploaded["sky.md"], uploaded["bread.html"]] and page.has_more
    assert {x.id for x in client.files.list()} >= set(uploaded.values())  # the SDK follows the pages

    extra = client.files.create(file=("notes.json", b'{"a": 1}'), purpose="user_data")
    deleted = client.files.delete(extra.id)
    validate("DeleteFileResponse", _dump(deleted))
    with pytest.raises(openai.NotFoundError):
        client.files.retrieve(extra.id)
    with pytest.raises(openai.BadRequestError) as err:
        client.files.create(file=("tool.exe", b"MZ\x00\x00"), purpose="assistants")
    assert err.value.code == "unsupported_file" and ".pdf" in err.value.message
    with pytest.raises(openai.BadRequestError) as err:
        client.files.create(file=("a.txt", b"x"), purpose="homework")
    assert err.value.body["param"] == "purpose"


def test_uploads_in_parts(project_client) -> None:
    client = project_client
    data = b"Part one of the manual. " * 100 + b"Part two of the manual."
    upload = client.uploads.create(filename="manual.txt", purpose="assistants", bytes=len(data),
                                   mime_type="text/plain")  # fmt: skip
    validate("Upload", _dump(upload))
    parts = [client.uploads.parts.create(upload.id, data=piece) for piece in (data[:1000], data[1000:])]
    validate("UploadPart", _dump(parts[0]))
    with pytest.raises(openai.BadRequestError):  # the parts hold fewer bytes than declared
        client.uploads.complete(upload.id, part_ids=[parts[0].id])
    done = client.uploads.complete(upload.id, part_ids=[p.id for p in parts])
    assert done.status == "completed" and done.file is not None
    assert client.files.content(done.file.id).read() == data
    cancelled = client.uploads.cancel(client.uploads.create(filename="x.txt", purpose="assistants", bytes=5,
                                                            mime_type="text/plain").id)  # fmt: skip
    assert cancelled.status == "cancelled"


def test_vector_store_search_filters_and_deletion(project_client, uploaded) -> None:
    client = project_client
    store = client.vector_stores.create(name="notes", file_ids=[uploaded["sky.md"], uploaded["bread.html"]],
                                        metadata={"team": "docs"})  # fmt: skip
    validate("VectorStoreObject", _dump(store))
    attached = client.vector_stores.files.create(vector_store_id=store.id, file_id=uploaded["trains.txt"],
                                                 attributes={"kind": "timetable", "year": 2026})  # fmt: skip
    validate("VectorStoreFileObject", _dump(attached))
    _wait_completed(client, store.id)
    store = client.vector_stores.retrieve(store.id)
    assert store.file_counts.completed == 3 and store.usage_bytes > 0

    results = client.vector_stores.search(store.id, query="Why is the sky blue?", max_num_results=2)
    validate("VectorStoreSearchResultsPage", _dump(results))
    assert results.data[0].filename == "sky.md" and "scatters" in results.data[0].content[0].text
    assert results.data[0].score >= results.data[1].score
    bread = client.vector_stores.search(store.id, query="how long should dough rise").data[0]
    assert bread.filename == "bread.html" and "<p>" not in bread.content[0].text  # HTML read as text

    only = client.vector_stores.search(store.id, query="Why is the sky blue?",
                                       filters={"type": "eq", "key": "kind", "value": "timetable"})  # fmt: skip
    assert [r.filename for r in only.data] == ["trains.txt"] and only.data[0].attributes["year"] == 2026
    compound = {"type": "and", "filters": [{"type": "gte", "key": "year", "value": 2026},
                                           {"type": "in", "key": "kind", "value": ["recipe"]}]}  # fmt: skip
    assert client.vector_stores.search(store.id, query="train", filters=compound).data == []
    with pytest.raises(openai.BadRequestError) as err:
        client.vector_stores.search(store.id, query="x", filters={"type": "like", "key": "k", "value": 1})
    assert err.value.body["param"] == "filters.type"

    content = client.vector_stores.files.content(uploaded["trains.txt"], vector_store_id=store.id)
    assert "Vienna" in "".join(c.text for c in content)

    # Removing a file from the store removes its vectors: it is no longer found.
    removed = client.vector_stores.files.delete(uploaded["sky.md"], vector_store_id=store.id)
    validate("DeleteVectorStoreFileResponse", _dump(removed))
    after = client.vector_stores.search(store.id, query="Why is the sky blue?")
    assert "sky.md" not in [r.filename for r in after.data]
    assert client.files.retrieve(uploaded["sky.md"]).id  # the file itself stays
    assert client.vector_stores.delete(store.id).deleted
    with pytest.raises(openai.NotFoundError):
        client.vector_stores.retrieve(store.id)


def test_file_batches_upload_and_poll(project_client) -> None:
    client = project_client
    store = client.vector_stores.create(name="batch")
    long_text = " ".join(f"Sentence number {i} is about lighthouses and their keepers." for i in range(120))
    batch = client.vector_stores.file_batches.upload_and_poll(
        vector_store_id=store.id,
        files=[("lighthouses.txt", long_text.encode()), ("sky.md", DOCS["sky.md"])],
        chunking_strategy={"type": "static", "static": {"max_chunk_size_tokens": 100, "chunk_overlap_tokens": 20}},
    )
    validate("VectorStoreFileBatchObject", _dump(batch))
    assert batch.status == "completed" and batch.file_counts.completed == 2
    files = client.vector_stores.file_batches.list_files(batch.id, vector_store_id=store.id)
    assert len(files.data) == 2
    chunks = [f for f in files.data if f.usage_bytes > 1000][0]
    assert chunks.chunking_strategy.static.max_chunk_size_tokens == 100
    pieces = client.vector_stores.files.content(chunks.id, vector_store_id=store.id)
    assert len(list(pieces)) > 5  # 120 sentences of ~13 tokens in chunks of at most 100
    with pytest.raises(openai.BadRequestError) as err:
        client.vector_stores.create(chunking_strategy={"type": "static", "static": {
            "max_chunk_size_tokens": 50, "chunk_overlap_tokens": 0}})  # fmt: skip
    assert err.value.body["param"] == "chunking_strategy.static"


def test_other_projects_see_nothing(server, project_client, uploaded) -> None:
    store = project_client.vector_stores.create(name="private", file_ids=[uploaded["trains.txt"]])
    other = openai.OpenAI(base_url=server.base_url, max_retries=0, api_key=create_key(
        {"HOMEPORT_DATA_DIR": str(server.data_dir)}, "--name", "outsider", "--project", "outsiders"))  # fmt: skip
    for call in (
        lambda: other.files.retrieve(uploaded["trains.txt"]),
        lambda: other.files.content(uploaded["trains.txt"]),
        lambda: other.files.delete(uploaded["trains.txt"]),
        lambda: other.vector_stores.retrieve(store.id),
        lambda: other.vector_stores.search(store.id, query="train"),
        lambda: other.vector_stores.files.list(vector_store_id=store.id),
        lambda: other.vector_stores.delete(store.id),
        lambda: other.vector_stores.create(file_ids=[uploaded["trains.txt"]]),
    ):
        with pytest.raises(openai.NotFoundError):
            call()
    assert uploaded["trains.txt"] not in [f.id for f in other.files.list()]
    assert store.id not in [s.id for s in other.vector_stores.list()]


FAKE = [{"id": "fake-chat", "version": "v1", "kind": "chat", "backend": "fake"},
        {"id": "fake-embed", "version": "v1", "kind": "embedding", "backend": "fake"}]  # fmt: skip


def test_restart_mid_ingestion_resumes_and_oversized_files_are_413(tmp_path) -> None:
    config = {"models": FAKE, "vector_store_model": "fake-embed", "max_file_bytes": 4096}
    server = start_server(tmp_path, config)
    try:
        client = openai.OpenAI(base_url=server.base_url, api_key=create_key(
            {"HOMEPORT_DATA_DIR": str(server.data_dir)}, "--name", "k"), max_retries=0)  # fmt: skip
        with pytest.raises(openai.APIStatusError) as err:
            client.files.create(file=("big.txt", b"x" * 5000), purpose="assistants")
        assert err.value.status_code == 413
        assert [f.id for f in client.files.list()] == []  # nothing half-written is visible
        f = client.files.create(file=("keep.txt", b"alpha beta gamma delta"), purpose="assistants")
        store = client.vector_stores.create(file_ids=[f.id])
        _wait_completed(client, store.id)
    finally:
        stop_server(server)
    # What a crash mid-ingestion leaves behind: the file `in_progress`, its chunks not yet written.
    db = sqlite3.connect(server.data_dir / "homeport.db")
    with db:
        db.execute("UPDATE vector_store_files SET status = 'in_progress'")
        db.execute("DELETE FROM chunks")
    db.close()
    server = start_server(tmp_path / "again", config, env={"HOMEPORT_DATA_DIR": str(server.data_dir)})
    try:
        client = openai.OpenAI(base_url=server.base_url, api_key=client.api_key, max_retries=0)
        _wait_completed(client, store.id)
        assert client.vector_stores.search(store.id, query="alpha beta gamma delta").data[0].file_id == f.id
        r = httpx.get(
            f"{server.base_url}/vector_stores/{store.id}", headers={"Authorization": f"Bearer {client.api_key}"}
        )
        assert r.json()["file_counts"]["completed"] == 1
    finally:
        stop_server(server)


def test_hybrid_search_finds_exact_codes(project_client) -> None:
    client = project_client
    codes = ["QZ7781", "KT2290", "MB5514", "RW3307", "LD6652", "HX1148"]
    ids = [client.files.create(file=(f"{code}.txt", f"Printer error {code}: the paper tray is misaligned; reseat "
                                                    f"the tray and restart the printer.".encode()),
                               purpose="assistants").id for code in codes]  # fmt: skip
    store = client.vector_stores.create(name="codes", file_ids=ids)
    _wait_completed(client, store.id)
    for code in ("QZ7781", "LD6652"):
        top = client.vector_stores.search(store.id, query=f"What does error {code} mean?", max_num_results=3).data
        assert top[0].filename == f"{code}.txt" and 0 < top[0].score <= 1
    plain = client.vector_stores.search(store.id, query="error QZ7781", ranking_options={"ranker": "none"})
    assert {r.filename for r in plain.data} <= {f"{c}.txt" for c in codes}  # vector scores only: no keyword help


def test_replicas_on_pgvector_search_one_shared_index(tmp_path) -> None:
    bin_dir = pgvector_bin_dir()
    if bin_dir is None:
        pytest.skip("no PostgreSQL with pgvector here (postgresql-NN-pgvector or the pgserver test dependency)")
    config = {"load_models": ["all-minilm-l6-v2"]}
    with throwaway_cluster(bin_dir) as url:
        shared = tmp_path / "shared"  # the files' bytes: a volume every replica mounts
        env = {"HOMEPORT_DATABASE_URL": url, "HOMEPORT_VECTOR_INDEX": "pgvector",  # pgvector, or refuse to start
               "HOMEPORT_DATA_DIR": str(shared)}  # fmt: skip
        servers = []
        try:
            servers = [start_server(tmp_path / name, config, env=env) for name in ("a", "b")]
            secret = create_key(env, "--name", "rag")
            on_a, on_b = (openai.OpenAI(base_url=s.base_url, api_key=secret, max_retries=0) for s in servers)
            ids = {name: on_a.files.create(file=(name, data), purpose="assistants").id for name, data in DOCS.items()}
            store = on_a.vector_stores.create(name="shared", file_ids=list(ids.values()))
            _wait_completed(on_b, store.id)
            found = on_b.vector_stores.search(store.id, query="When does the night train to Vienna leave?")
            validate("VectorStoreSearchResultsPage", _dump(found))
            assert found.data[0].file_id == ids["trains.txt"] and 0 < found.data[0].score <= 1
            on_b.vector_stores.files.update(file_id=ids["sky.md"], vector_store_id=store.id,
                                            attributes={"topic": "weather"})  # fmt: skip
            only = on_a.vector_stores.search(store.id, query="train", filters={"type": "eq", "key": "topic",
                                                                                "value": "weather"})  # fmt: skip
            assert [r.file_id for r in only.data] == [ids["sky.md"]]
            on_a.vector_stores.files.delete(file_id=ids["trains.txt"], vector_store_id=store.id)
            again = on_b.vector_stores.search(store.id, query="When does the night train to Vienna leave?")
            assert ids["trains.txt"] not in {r.file_id for r in again.data}  # the other replica holds no stale copy
            assert not any((shared / "vector_indexes").glob("*"))  # no index of their own on disk
        finally:
            for s in servers:
                stop_server(s)
