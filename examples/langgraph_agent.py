"""A LangGraph graph that uses mcp-llm's tools: draft with `generate` → review the draft with our
`review_output` prompt (and `generate`) → three variants with one `batch` call → pick one. No external
API: the served model is the only LLM. Prints the graph's final state as JSON.

    .venv/bin/python examples/langgraph_agent.py "Explain what a KV cache is in two sentences."
    .venv/bin/python examples/langgraph_agent.py --http http://127.0.0.1:8000/mcp [--token T] "..."

Tools reach LangGraph as LangChain `StructuredTool`s built from the server's tool list. The usual bridge,
langchain-mcp-adapters (0.3.2, the newest release), requires mcp<2 and fails to import with the mcp 2.x
SDK this server is built on (`RequestContext` left `mcp.shared.context`), so `load_mcp_tools` below does
the same job with the SDK's own `Client`: one tool per MCP tool, its inputSchema as the args schema.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any, TypedDict

from langchain_core.tools import StructuredTool
from langgraph.graph import END, START, StateGraph
from mcp import Client, StdioServerParameters
from mcp.client.streamable_http import streamable_http_client
from mcp.shared._httpx_utils import create_mcp_http_client

REPO = Path(__file__).resolve().parent.parent


def load_mcp_tools(client: Client, tools: list[Any]) -> dict[str, StructuredTool]:
    """LangChain tools that call the MCP server's tools and return their structured results."""

    def wrap(tool: Any) -> StructuredTool:
        async def call(**arguments: Any) -> Any:
            result = await client.call_tool(tool.name, arguments)
            if result.is_error:
                raise RuntimeError(result.content[0].text)
            return result.structured_content

        return StructuredTool.from_function(
            coroutine=call, name=tool.name, description=tool.description or "", args_schema=tool.input_schema
        )

    return {tool.name: wrap(tool) for tool in tools}


class State(TypedDict, total=False):
    task: str
    draft: str
    review: str
    variants: list[str]
    best: str


def build_graph(client: Client, tools: dict[str, StructuredTool]):
    """draft → review → variants → pick."""

    def chat(text: str) -> list[dict[str, str]]:
        return [{"role": "user", "content": text}]

    async def draft(state: State) -> State:
        answer = await tools["generate"].ainvoke({"messages": chat(state["task"]), "max_tokens": 96, "temperature": 0})
        return {"draft": answer["text"].strip()}

    async def review(state: State) -> State:
        prompt = await client.get_prompt("review_output", {"prompt": state["task"], "output": state["draft"]})
        messages = [{"role": m.role, "content": m.content.text} for m in prompt.messages]
        answer = await tools["generate"].ainvoke({"messages": messages, "max_tokens": 96, "temperature": 0})
        return {"review": answer["text"].strip()}

    async def variants(state: State) -> State:
        rewrite = (
            f"{state['task']}\nImprove this answer using the review.\n"
            f"Answer: {state['draft']}\nReview: {state['review']}"
        )
        answer = await tools["batch"].ainvoke(  # three samples of one rewrite, in one engine batch
            {"messages": [chat(rewrite)] * 3, "max_tokens": 96, "temperature": 0.8, "wait": True}
        )
        return {"variants": [item["text"].strip() for item in answer["results"]]}

    def pick(state: State) -> State:
        candidates = [v for v in state["variants"] if v] or [state["draft"]]
        return {"best": min(candidates, key=lambda v: abs(len(v.split()) - 40))}  # closest to ~40 words

    graph = StateGraph(State)
    for name, node in (("draft", draft), ("review", review), ("variants", variants), ("pick", pick)):
        graph.add_node(name, node)
    graph.add_edge(START, "draft")
    graph.add_edge("draft", "review")
    graph.add_edge("review", "variants")
    graph.add_edge("variants", "pick")
    graph.add_edge("pick", END)
    return graph.compile()


async def connect(stack: AsyncExitStack, http: str | None, token: str | None) -> Client:
    """A client of the server at `http` (with a bearer `token`), else of one started here over stdio."""
    if http:
        headers = {"Authorization": f"Bearer {token}"} if token else None
        http_client = await stack.enter_async_context(create_mcp_http_client(headers=headers))
        server: Any = streamable_http_client(http, http_client=http_client)
    else:
        server = StdioServerParameters(command=sys.executable, args=[str(REPO / "server.py")])
    return await stack.enter_async_context(Client(server, read_timeout_seconds=600))


async def run(task: str, http: str | None, token: str | None) -> State:
    async with AsyncExitStack() as stack:
        client = await connect(stack, http, token)
        tools = load_mcp_tools(client, (await client.list_tools()).tools)
        return await build_graph(client, tools).ainvoke({"task": task})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("task", nargs="?", default="Explain what a KV cache is in two sentences.")
    parser.add_argument("--http", help="Streamable HTTP URL of a running server (default: start one over stdio)")
    parser.add_argument("--token", help="bearer token for --http")
    args = parser.parse_args()
    print(json.dumps(asyncio.run(run(args.task, args.http, args.token)), indent=2))


if __name__ == "__main__":
    main()
