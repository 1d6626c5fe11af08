"""Cost of a large `batch` result outside the engine: the server's conversion of a 1,024-item BatchResult
to a tool result, its wire size, and the SDK client's validation against the tool's outputSchema, as pydantic
writes it and as we publish it (output_schemas.quick_to_check), best of ROUNDS each, alternating.
Prints a table and writes JSON (bench/results/result-payload-<UTC>.json).
Usage: python bench/result_payload.py [ITEMS] [ROUNDS]"""

import json
import platform
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from jsonschema import Draft202012Validator
from mcp import types
from mcp.server.mcpserver.utilities.func_metadata import func_metadata

from mcp_llm.schemas import BatchItem, BatchResult, JobStatus, Timing, Usage
from mcp_llm.server.output_schemas import quick_to_check


def timed_ms(fn) -> tuple[object, float]:
    started = time.perf_counter()
    value = fn()
    return value, (time.perf_counter() - started) * 1000


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 1024
    text = " ".join(["word"] * 128)
    usage = Usage(prompt_tokens=128, completion_tokens=128, total_tokens=256)
    timing = Timing(queue_ms=1.0, ttft_ms=30.0, tpot_ms=8.0, total_ms=1000.0, tokens_per_s=128.0)
    items = [
        BatchItem(index=i, status="done", text=text, finish_reason="length", usage=usage, timing=timing)
        for i in range(n)
    ]
    job = JobStatus(
        job_id="j", status="completed", total=n, completed=n, failed=0, pending=0, created_at=0, updated_at=0
    )
    result = BatchResult(job=job, results=items, elapsed_s=1.0, output_tokens_per_s=1.0)

    async def tool() -> BatchResult: ...

    meta = func_metadata(tool)
    converted, convert_ms = timed_ms(lambda: meta.convert_result(result))
    wire, dump_ms = timed_ms(lambda: converted.model_dump_json(by_alias=True, exclude_none=True))
    parsed, parse_ms = timed_ms(lambda: types.CallToolResult.model_validate_json(wire))
    rounds = int(sys.argv[2]) if len(sys.argv) > 2 else 5
    instance = parsed.structured_content
    validators = {
        "pydantic's schema": Draft202012Validator(meta.output_schema),
        "published (quick_to_check)": Draft202012Validator(quick_to_check(meta.output_schema)),
    }
    best = dict.fromkeys(validators, float("inf"))
    for _ in range(rounds):
        for name, validator in validators.items():
            errors, ms = timed_ms(lambda v=validator: list(v.iter_errors(instance)))
            assert not errors, errors[:1]
            best[name] = min(best[name], ms)
    print(
        f"{n} items: server convert_result {convert_ms:.0f} ms, wire JSON {dump_ms:.0f} ms ({len(wire) / 1e6:.2f} MB)"
    )
    print(f"client: parse {parse_ms:.0f} ms; outputSchema validation (jsonschema), best of {rounds}:")
    for name, ms in best.items():
        print(f"  {name:<28} {ms:8.0f} ms")
    out = Path(__file__).parent / "results" / f"result-payload-{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())}.json"
    out.parent.mkdir(exist_ok=True)
    figures = {"items": n, "rounds": rounds, "convert_ms": convert_ms, "wire_bytes": len(wire), "parse_ms": parse_ms}
    out.write_text(json.dumps(figures | {"validate_ms": best, "machine": platform.platform()}, indent=1))
    print(f"JSON: {out}")


if __name__ == "__main__":
    main()
