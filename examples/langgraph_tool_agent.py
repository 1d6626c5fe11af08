"""A LangGraph tool-using agent whose decisions come from the local model: `generate` with `tools` picks a
tool and its arguments (constrained to a valid call, so even the 135M default model calls correctly), the
graph runs the tool here in Python, and `generate` answers from the tool's result. No external API. Prints
the final state (the calls made, the turns, the answer) as JSON.

    .venv/bin/python examples/langgraph_tool_agent.py "What is the weather in Oslo?"
    .venv/bin/python examples/langgraph_tool_agent.py --http http://127.0.0.1:8000/mcp [--token T] [--auto] "..."

`--auto` lets the model decide whether to call at all (tool_choice `auto`: the server must run with the
model's `--tool-call-parser`, e.g. hermes for Qwen models); the default, `required`, always calls one.
"""

from __future__ import annotations

import argparse
import asyncio
import json
from contextlib import AsyncExitStack
from typing import Any, TypedDict

from langgraph.graph import END, START, StateGraph
from langgraph_agent import connect, load_mcp_tools

WEATHER = {"Oslo": {"celsius": -3, "sky": "snow"}, "Paris": {"celsius": 9, "sky": "rain"}}
TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "description": "The weather now in a city.",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
        },
    },
    {
        "type": "function",
        "function": {
            "name": "add",
            "description": "The sum of two numbers.",
            "parameters": {
                "type": "object",
                "properties": {"a": {"type": "number"}, "b": {"type": "number"}},
                "required": ["a", "b"],
            },
        },
    },
]


def run_tool(name: str, arguments: dict[str, Any]) -> Any:
    """The tools themselves: they run here, in the agent, never in the server."""
    if name == "get_weather":
        return WEATHER.get(arguments["city"].strip().title(), {"celsius": 15, "sky": "clear"})
    return {"sum": arguments["a"] + arguments["b"]}


class State(TypedDict, total=False):
    question: str
    turns: list[dict]
    calls: list[dict]
    answer: str


def build_graph(generate: Any, choice: str):
    """decide → (act → answer) | done."""

    async def decide(state: State) -> State:
        turns = [{"role": "user", "content": state["question"]}]
        out = await generate.ainvoke(
            {"messages": turns, "tools": TOOLS, "tool_choice": choice, "max_tokens": 80, "temperature": 0}
        )
        if not out.get("tool_calls"):
            return {"turns": turns, "calls": [], "answer": out["text"].strip()}
        return {"turns": [*turns, {"role": "assistant", "content": "", "tool_calls": out["tool_calls"]}]}

    async def act(state: State) -> State:
        calls = state["turns"][-1]["tool_calls"]
        results = [
            {"role": "tool", "tool_call_id": c["id"], "content": json.dumps(run_tool(c["name"], c["arguments"]))}
            for c in calls
        ]
        return {"turns": [*state["turns"], *results], "calls": calls}

    async def answer(state: State) -> State:
        out = await generate.ainvoke(
            {"messages": state["turns"], "tools": TOOLS, "tool_choice": "none", "max_tokens": 60, "temperature": 0}
        )
        return {"answer": out["text"].strip()}

    graph = StateGraph(State)
    for name, node in (("decide", decide), ("act", act), ("answer", answer)):
        graph.add_node(name, node)
    graph.add_edge(START, "decide")
    graph.add_conditional_edges("decide", lambda s: END if "answer" in s else "act")
    graph.add_edge("act", "answer")
    graph.add_edge("answer", END)
    return graph.compile()


async def run(question: str, http: str | None, token: str | None, auto: bool) -> State:
    async with AsyncExitStack() as stack:
        client = await connect(stack, http, token)
        tools = load_mcp_tools(client, (await client.list_tools()).tools)
        graph = build_graph(tools["generate"], "auto" if auto else "required")
        return await graph.ainvoke({"question": question})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("question", nargs="?", default="What is the weather in Oslo?")
    parser.add_argument("--http", help="Streamable HTTP URL of a running server (default: start one over stdio)")
    parser.add_argument("--token", help="bearer token for --http")
    parser.add_argument("--auto", action="store_true", help="tool_choice auto (needs the server's tool-call parser)")
    args = parser.parse_args()
    print(json.dumps(asyncio.run(run(args.question, args.http, args.token, args.auto)), indent=2))


if __name__ == "__main__":
    main()
