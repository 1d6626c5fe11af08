"""Many clients, one server, over real HTTP with real bearer tokens on the shared engine: each user sees and acts on
its own jobs, tasks and benchmarks only (another's id is "not found", exactly as an unknown one), an admin sees and
cancels everyone's, and what swaps the shared engine needs the admin role."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import mcp_types as types
import pytest
from mcp import Client
from mcp.shared.exceptions import MCPError

from mcp_llm.core import loadtest
from mcp_llm.core.access import Principal
from mcp_llm.core.services import Services
from mcp_llm.server.schemas import Comparison
from tests.support.inproc import client_as, http_app
from tests.support.tasks import start_task

pytestmark = pytest.mark.anyio

TOKENS = {
    "tok-alice": Principal("alice", "user"),
    "tok-bob": Principal("bob", "user"),
    "tok-root": Principal("root", "admin"),
    "tok-vera": Principal("vera", "viewer"),
}
LONG = {"prompts": ["Count slowly:"] * 4, "max_tokens": 1500, "ignore_eos": True, "temperature": 0, "wait": False}
SHORT = {"prompts": ["Hi", "Yes"], "max_tokens": 2, "temperature": 0, "wait": False}


@pytest.fixture(scope="module")
async def url(services: Services) -> AsyncIterator[str]:
    async with http_app(services, TOKENS) as url:
        yield url


async def job_of(url: str, token: str, arguments: dict) -> str:
    async with client_as(url, token) as client:
        result = await client.call_tool("batch", arguments)
        assert not result.is_error, result.content
        return result.structured_content["job"]["job_id"]


def error_text(result: types.CallToolResult) -> str:
    """The tool error's message, without the SDK's "Error executing tool NAME: " prefix."""
    assert result.is_error, result.structured_content
    return result.content[0].text.split(": ", 1)[-1]


async def test_a_users_job_is_not_found_for_another_user_and_the_admin_sees_and_cancels_it(url: str) -> None:
    long_job, short_job = await job_of(url, "tok-alice", LONG), await job_of(url, "tok-alice", SHORT)
    async with client_as(url, "tok-bob") as bob:
        bobs_job = await job_of(url, "tok-bob", SHORT)
        listed = (await bob.call_tool("list_jobs", {})).structured_content["result"]
        assert [j["job_id"] for j in listed] == [bobs_job] and listed[0]["client"] == "bob"
        unknown = error_text(await bob.call_tool("job_status", {"job_id": "0123456789abcdef"}))
        for tool in ("job_status", "job_results", "cancel_job"):
            text = error_text(await bob.call_tool(tool, {"job_id": long_job}))
            assert text == unknown.replace("0123456789abcdef", long_job), tool  # word for word as an unknown id
        with pytest.raises(MCPError, match="No job"):
            await bob.read_resource(f"jobs://{short_job}")
        with pytest.raises(MCPError, match="No job"):
            await bob.read_resource(f"jobs://{short_job}/results/1")
    async with client_as(url, "tok-bob", mode="legacy") as bob:  # nor hear its updates
        with pytest.raises(MCPError, match=f"No job '{short_job}'"):
            await bob.subscribe_resource(f"jobs://{short_job}")
    async with client_as(url, "tok-alice", mode="legacy") as alice:
        await alice.subscribe_resource(f"jobs://{short_job}")
    async with client_as(url, "tok-alice") as alice:
        mine = {j["job_id"] for j in (await alice.call_tool("list_jobs", {})).structured_content["result"]}
        assert mine == {long_job, short_job}
        assert (await alice.read_resource(f"jobs://{short_job}")).contents
    async with client_as(url, "tok-root") as root:
        everyone = {
            j["job_id"]: j["client"] for j in (await root.call_tool("list_jobs", {})).structured_content["result"]
        }
        assert {long_job: "alice", short_job: "alice", bobs_job: "bob"}.items() <= everyone.items()
        cancelled = await root.call_tool("cancel_job", {"job_id": long_job})
        assert not cancelled.is_error and cancelled.structured_content["status"] == "cancelled"


async def test_tasks_belong_to_the_client_that_started_them(url: str) -> None:
    async with client_as(url, "tok-alice", mode="legacy") as alice:
        task = await start_task(alice, "batch", LONG | {"wait": True})
        listed = await alice.session.send_request(types.ListTasksRequest(), types.ListTasksResult)
        assert task.task_id in [t.task_id for t in listed.tasks]
    async with client_as(url, "tok-bob", mode="legacy") as bob:
        listed = await bob.session.send_request(types.ListTasksRequest(), types.ListTasksResult)
        assert task.task_id not in [t.task_id for t in listed.tasks]
        get = types.GetTaskRequest(params=types.GetTaskRequestParams(task_id=task.task_id))
        with pytest.raises(MCPError, match="No task"):
            await bob.session.send_request(get, types.GetTaskResult)
        cancel = types.CancelTaskRequest(params=types.CancelTaskRequestParams(task_id=task.task_id))
        with pytest.raises(MCPError, match="No task"):
            await bob.session.send_request(cancel, types.CancelTaskResult)
        payload = types.GetTaskPayloadRequest(params=types.GetTaskPayloadRequestParams(task_id=task.task_id))
        with pytest.raises(MCPError, match="No task"):
            await bob.session.send_request(payload, types.CallToolResult)
    async with client_as(url, "tok-root", mode="legacy") as root:
        listed = await root.session.send_request(types.ListTasksRequest(), types.ListTasksResult)
        assert task.task_id in [t.task_id for t in listed.tasks]
        cancelled = await root.session.send_request(cancel, types.CancelTaskResult)
        assert cancelled.status == "cancelled"


async def test_benchmark_runs_belong_to_their_client(url: str, services: Services) -> None:
    loadtest.save(
        services, "bench-of-alice", "benchmark", "alice's run", Comparison(benchmark_ids=[], rows=[]), b"", "alice"
    )
    async with client_as(url, "tok-bob") as bob:
        index = (await bob.read_resource("benchmarks://index")).contents[0].text
        assert "bench-of-alice" not in index
        with pytest.raises(MCPError, match="No benchmark"):
            await bob.read_resource("benchmarks://bench-of-alice")
        compared = await bob.call_tool("compare_benchmarks", {"benchmark_ids": ["bench-of-alice"]})
        assert "No benchmark" in error_text(compared)
    async with client_as(url, "tok-alice") as alice:
        assert "bench-of-alice" in (await alice.read_resource("benchmarks://index")).contents[0].text
        assert (await alice.read_resource("benchmarks://bench-of-alice")).contents


async def test_what_swaps_the_engine_needs_the_admin_role_and_a_viewer_only_reads(url: str, services: Services) -> None:
    serving = services.engine.model_name
    async with client_as(url, "tok-alice") as alice:
        for tool, arguments in (
            ("load_model", {"name": "anything", "confirm": True}),
            ("quantize", {"scheme": "W8A8", "name": "q"}),
            ("benchmark", {"variants": [{"max_num_seqs": 4}], "confirm": True}),
            ("share_adapter", {"name": "x"}),
        ):
            text = error_text(await alice.call_tool(tool, arguments))
            assert text.startswith(f"`{tool}` needs the admin role"), (
                text and "client `alice` has the user role" in text
            )
    assert services.engine.model_name == serving and not services.engine.restarting
    async with client_as(url, "tok-vera") as vera:
        assert "needs the user role" in error_text(await vera.call_tool("generate", {"prompt": "Hi", "max_tokens": 2}))
        assert "needs the user role" in error_text(await vera.call_tool("batch", SHORT))
        assert not (await vera.call_tool("list_models", {})).is_error
        assert (await vera.call_tool("list_jobs", {})).structured_content["result"] == []
        assert (await vera.read_resource("model://config")).contents
    async with client_as(url, "tok-alice", mode="legacy") as alice:  # refused before a task is made
        denied = await start_task_or_result(alice, "quantize", {"scheme": "W8A8", "name": "q"})
        assert isinstance(denied, types.CallToolResult) and "needs the admin role" in error_text(denied)


async def start_task_or_result(client: Client, tool: str, arguments: dict) -> types.CallToolResult:
    """A task-augmented call the server answers with a plain result (a refusal) instead of a task."""
    params = types.CallToolRequestParams(name=tool, arguments=arguments, task=types.TaskMetadata(ttl=60_000))
    request = types.CallToolRequest(params=params)
    return await client.session.send_request(request, types.CallToolResult)


async def test_health_tells_only_an_admin_more_than_the_state(url: str) -> None:
    health = url.removesuffix("/mcp") + "/health"
    async with httpx.AsyncClient(timeout=30) as http:
        assert (await http.get(health)).json() == {"status": "ready"}
        alice = await http.get(health, headers={"Authorization": "Bearer tok-alice"})
        assert alice.json() == {"status": "ready"}
        root = (await http.get(health, headers={"Authorization": "Bearer tok-root"})).json()
        assert root["status"] == "ready" and "model" in root and "running_requests" in root


@pytest.mark.parametrize(
    ("override", "expected"),
    [
        ({"max_model_len": 10_000_000}, "longer than the model's context of 8192 tokens"),
        ({"kv_cache_memory_bytes": 1 << 50}, "over 90 % of the cpu memory"),
        ({"max_num_seqs": 100_000}, "max_num_seqs"),
    ],
)
async def test_even_an_admin_cannot_wedge_the_engine_with_a_typo(
    override: dict, expected: str, services: Services, client: Client
) -> None:
    serving = services.engine.model_name  # the local client (in memory, no token) is the admin
    refused = await client.call_tool("load_model", {"name": serving, "confirm": True, **override})
    assert expected in error_text(refused)
    assert services.engine.model_name == serving and not services.engine.restarting


async def test_the_dashboard_shows_a_user_its_own_jobs_and_an_admin_everyones_with_usage(url: str) -> None:
    alices = await job_of(url, "tok-alice", SHORT | {"wait": True})  # finished: its usage is counted
    async with client_as(url, "tok-bob") as bob:
        data = (await bob.call_tool("dashboard_data", {})).structured_content
        assert alices not in [j["job_id"] for j in data["jobs"]] and data["usage"] is None
    async with client_as(url, "tok-root") as root:
        data = (await root.call_tool("dashboard_data", {})).structured_content
        assert {"job_id": alices, "client": "alice"}.items() <= next(
            j for j in data["jobs"] if j["job_id"] == alices
        ).items()
        assert "alice" in [entry["name"] for entry in data["usage"]]
        text = (await root.call_tool("dashboard", {})).content[0].text
        assert "Usage, last 24 h: " in text and f"{alices} " in text and "by alice" in text
