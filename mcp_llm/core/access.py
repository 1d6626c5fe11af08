"""Who may do what: every request has a principal (a client name and a role), and every operation a minimum role,
checked here and nowhere else. Ids a client names (jobs, tasks, benchmarks, adapters) belong to their creator:
a user acts on its own, an admin on any, and another's id reads as "not found" (ids do not leak)."""

from __future__ import annotations

from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any, Literal

from mcp_llm.errors import InputError

Role = Literal["admin", "user", "viewer"]
ROLES: tuple[Role, ...] = ("viewer", "user", "admin")  # each may do what the ones before it may
ROLE_SCOPES: dict[str, Role] = {f"mcp-llm:{role}": role for role in ROLES}


class Forbidden(InputError):
    """The caller's role does not allow the operation; the message names the role it needs."""


@dataclass(frozen=True)
class Principal:
    """Who a request comes from: the client's name and its role."""

    client: str
    role: Role = "user"

    @property
    def admin(self) -> bool:
        return self.role == "admin"

    def owns(self, owner: str | None) -> bool:
        """Whether this principal may see and act on something `owner` created (rows from before owners
        were recorded have none, and belong to admins)."""
        return self.admin or (owner is not None and owner == self.client)

    def at_least(self, role: Role) -> bool:
        return ROLES.index(self.role) >= ROLES.index(role)


# The principal of the tool call the current task serves (set by the server for each call): the request path reads
# it for quotas. Unset outside a client's call (a resumed job, a test driving the core): no quotas apply.
caller: ContextVar[Principal | None] = ContextVar("caller", default=None)


def role_of_scopes(scopes: list[str] | None) -> Role | None:
    """The highest role among `mcp-llm:<role>` scopes, None without one."""
    roles = [ROLE_SCOPES[s] for s in scopes or () if s in ROLE_SCOPES]
    return max(roles, key=ROLES.index) if roles else None


# The role each tool needs; what is not listed needs `user`. Reading (models, adapters, own jobs) is for viewers
# too; anything that swaps or rebuilds the shared engine, or changes what others may use, is for admins.
TOOL_ROLES: dict[str, Role] = {
    "list_models": "viewer",
    "list_adapters": "viewer",
    "list_jobs": "viewer",
    "job_status": "viewer",
    "job_results": "viewer",
    "compare_benchmarks": "viewer",
    "load_model": "admin",
    "quantize": "admin",
    "tune_serving": "admin",  # each variant it tries swaps the engine
    "dashboard": "viewer",
    "dashboard_data": "viewer",
    "share_adapter": "admin",
    "usage": "admin",
}


def needed_role(tool: str, arguments: dict[str, Any]) -> Role:
    """The role a call needs: the tool's, raised to admin when its arguments swap the shared engine."""
    if tool == "benchmark" and arguments.get("variants"):
        return "admin"
    return TOOL_ROLES.get(tool, "user")


def check_tool(principal: Principal, tool: str, arguments: dict[str, Any]) -> None:
    """Forbidden unless the principal's role allows this call."""
    role = needed_role(tool, arguments)
    if not principal.at_least(role):
        why = {
            "admin": "it changes the engine or what other clients may use",
            "user": "it runs work on the engine",
        }.get(role, "")
        raise Forbidden(
            f"`{tool}` needs the {role} role ({why}); client `{principal.client}` has the {principal.role} role. "
            "Ask the server's admin for a token with that role."
        )


def not_found(kind: str, ident: str, listing: str) -> InputError:
    """The answer for an id that does not exist and for one the caller may not see, alike."""
    return InputError(f"No {kind} {ident!r} on this server ({listing} shows yours).")
