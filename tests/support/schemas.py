"""Hostile JSON schemas for the schema-reference tests, and the real listening socket their `$ref`s point to
(it records every connection it is offered: there must be none)."""

from __future__ import annotations

import socket
import threading


class Listener:
    """A real listening socket on 127.0.0.1 that records (and drops) every connection it is offered."""

    def __init__(self) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.connections: list[tuple[str, int]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                conn, peer = self.sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            self.connections.append(peer)
            conn.close()  # an old server would get an error at once instead of hanging on a silent peer

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)
        self.sock.close()


def hostile_schemas(url: str) -> list[tuple[dict, str, str]]:
    """(schema, the offending reference as the error names it, where) for each way to point outside."""
    base = {"type": "object", "properties": {"a": {"type": "string"}}, "required": ["a"]}
    return [
        ({**base, "not": {"$ref": f"{url}/x"}}, f"{url}/x", "not"),
        (
            {"type": "object", "properties": {"a": {"type": "string", "not": {"$ref": f"{url}/nested"}}}},
            f"{url}/nested",
            "properties.a.not",
        ),
        ({"type": "array", "items": {"$ref": f"{url}/items.json"}}, f"{url}/items.json", "items"),
        (
            {**base, "$defs": {"remote": {"$id": f"{url}/base/", "type": "string"}}},
            f"{url}/base/",
            "$defs.remote",
        ),
        ({**base, "properties": {"a": {"$ref": "file:///etc/passwd"}}}, "file:///etc/passwd", "properties.a"),
        ({**base, "allOf": [{"$dynamicRef": f"{url}/dyn"}]}, f"{url}/dyn", "allOf.0"),
        ({**base, "not": {"$ref": "other.json#/x"}}, "other.json#/x", "not"),
    ]


def nested(depth: int) -> dict:
    """A string schema inside `depth` arrays (`depth` + 1 levels)."""
    schema: dict = {"type": "string"}
    for _ in range(depth):
        schema = {"type": "array", "items": schema}
    return schema
