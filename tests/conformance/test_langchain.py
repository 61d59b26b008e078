"""Smoke test: LangChain's OpenAI integration against a running Homeport."""

from __future__ import annotations

from tests.conftest import API_KEY


def test_chat_invoke_and_stream(server) -> None:
    from langchain_openai import ChatOpenAI

    llm = ChatOpenAI(model="smollm2-135m-instruct", base_url=server.base_url, api_key=API_KEY, max_tokens=12)
    reply = llm.invoke("Say hello.")
    assert reply.content
    assert reply.usage_metadata["output_tokens"] > 0
    parts = [chunk.content for chunk in llm.stream("Name a fruit.")]
    assert "".join(parts)


def test_embeddings(server) -> None:
    from langchain_openai import OpenAIEmbeddings

    # check_embedding_ctx_length=False: LangChain would otherwise send tiktoken ids (OpenAI's
    # tokenizer, fetched from the internet), which mean nothing to a local model.
    emb = OpenAIEmbeddings(
        model="all-minilm-l6-v2", base_url=server.base_url, api_key=API_KEY, check_embedding_ctx_length=False
    )
    vectors = emb.embed_documents(["first document", "second document"])
    assert len(vectors) == 2 and len(vectors[0]) == 384
    assert len(emb.embed_query("a query")) == 384
