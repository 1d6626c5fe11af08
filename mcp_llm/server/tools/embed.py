"""Tool `embed`: texts → vectors from the pooling engine that runs beside the generator."""

from __future__ import annotations

import uuid
from typing import Annotated

import anyio.to_thread
from mcp.server.mcpserver import Context
from pydantic import Field

from mcp_llm.core.inference import check_size
from mcp_llm.errors import InputError
from mcp_llm.schemas import EmbedResult
from mcp_llm.server.tools.common import client_name, services_of, tool_errors

TextsArg = Annotated[list[str], Field(description="The texts to embed (each non-empty).", min_length=1)]


@tool_errors
async def embed(ctx: Context, texts: TextsArg, normalize: bool = True) -> EmbedResult:
    """Embed texts with the server's embedding model (all requests go to the engine at once).

    Returns one vector per text in input order, the dimension and token counts. With `normalize`
    (default) vectors have unit length, so a dot product is the cosine similarity.
    """
    svc = services_of(ctx)
    if svc.embedder is None:
        raise InputError(
            "The embedding engine is off: start the server with --embedding-model default (the bundled "
            "all-MiniLM-L6-v2) or --embedding-model PATH, or set MCP_LLM_EMBEDDING_MODEL."
        )
    limit = svc.settings.max_embed_texts
    if len(texts) > limit:
        raise InputError(f"{len(texts)} texts is more than one call takes ({limit}): split them over several calls.")
    empty = [i for i, text in enumerate(texts) if not text.strip()]
    if empty:
        raise InputError(f"texts[{empty[0]}] is empty: every text needs some content.")
    check_size(sum(len(text) for text in texts), svc.settings.max_input_chars, "`texts` (all together)")
    token_ids = await anyio.to_thread.run_sync(svc.embedder.token_ids, texts)  # large inputs: off the event loop
    with svc.recorder.admitted(client_name(ctx), "embed"):  # the same in-flight bounds as generate
        vectors = await svc.embedder.embed(token_ids, normalize, f"embed-{uuid.uuid4().hex[:12]}")
    counts = [len(ids) for ids in token_ids]
    return EmbedResult(
        model=svc.embedder.model_name,
        dimension=len(vectors[0]),
        normalized=normalize,
        vectors=vectors,
        token_counts=counts,
        total_tokens=sum(counts),
    )


TOOLS = [embed]
