"""Quotas per client: tokens per minute and per day (prompt and output), concurrent jobs, queued batch items and
training runs per day. Limits come from settings (the `user` role's defaults) and a quota file (per role and per
client); usage is what the engine really did, read from the `usage` table the request log feeds (store.py).

Windows are calendar windows in UTC: a minute quota resets at the next minute, a day quota at midnight UTC."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from mcp_llm.core.access import Principal
from mcp_llm.errors import InputError
from mcp_llm.settings.limits import Limits, load_quota_file

if TYPE_CHECKING:
    from mcp_llm.core.store import Store
    from mcp_llm.settings import Settings

DAY_S, MINUTE_S = 86_400, 60


TOKEN_QUOTAS = {  # quota -> (usage column, window seconds)
    "prompt_tokens_per_minute": ("prompt_tokens", MINUTE_S),
    "output_tokens_per_minute": ("output_tokens", MINUTE_S),
    "prompt_tokens_per_day": ("prompt_tokens", DAY_S),
    "output_tokens_per_day": ("output_tokens", DAY_S),
}


class QuotaExceeded(InputError):
    """A call past one of the caller's quotas; `retry_after_s` says when the quota resets (None: when work ends)."""

    def __init__(self, message: str, retry_after_s: float | None) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


class Quotas:
    """Each principal's limits and the checks against its usage."""

    def __init__(self, settings: Settings, store: Store) -> None:
        self.store = store
        self.file = load_quota_file(settings.quota_file)
        self.user_defaults = Limits(**{name: getattr(settings, f"quota_{name}") for name in Limits.model_fields})

    def limits(self, principal: Principal) -> Limits:
        """The client's own entry, else its role's, else (users) the settings' defaults; admins are unlimited
        unless the file names them or their role."""
        if principal.client in self.file.clients:
            return self.file.clients[principal.client]
        if principal.role in self.file.roles:
            return self.file.roles[principal.role]
        return self.user_defaults if principal.role == "user" else Limits()

    def state(self, principal: Principal, now: float | None = None) -> dict[str, dict]:
        """Each set quota: used, limit, and when it resets (unix time; None for counts of open work)."""
        now = time.time() if now is None else now
        limits, state = self.limits(principal), {}
        for name, (column, window) in TOKEN_QUOTAS.items():
            if (limit := getattr(limits, name)) is not None:
                start = now - now % window
                used = self.store.usage_since(principal.client, start)[column]
                state[name] = {"used": used, "limit": limit, "resets_at": start + window}
        if limits.training_runs_per_day is not None:
            start = now - now % DAY_S
            used = self.store.usage_since(principal.client, start, kind="train")["requests"]
            limit = limits.training_runs_per_day
            state["training_runs_per_day"] = {"used": used, "limit": limit, "resets_at": start + DAY_S}
        if limits.concurrent_jobs is not None or limits.queued_items is not None:  # one query, only when asked
            open_jobs = self.store.open_work(principal.client)
            for name, used in (("concurrent_jobs", open_jobs["jobs"]), ("queued_items", open_jobs["items"])):
                if (limit := getattr(limits, name)) is not None:
                    state[name] = {"used": used, "limit": limit, "resets_at": None}
        return state

    def check_tokens(self, principal: Principal, state: dict[str, dict] | None = None) -> None:
        """QuotaExceeded if the client has used up a token quota of the current window (from `state`, if read
        already). Without token quotas, nothing is read: this runs before every interactive call."""
        now = time.time()
        if state is None:
            limits = self.limits(principal)
            if all(getattr(limits, name) is None for name in TOKEN_QUOTAS):
                return
            state = self.state(principal, now)
        for name, entry in state.items():
            if name in TOKEN_QUOTAS and entry["used"] >= entry["limit"]:
                raise _exceeded(principal, name, entry, now)

    def check_job(self, principal: Principal, items: int) -> None:
        """QuotaExceeded if a new job of `items` items would pass a token, job or queued-items quota."""
        now, state = time.time(), self.state(principal)
        self.check_tokens(principal, state)
        if (jobs := state.get("concurrent_jobs")) and jobs["used"] + 1 > jobs["limit"]:
            raise _exceeded(principal, "concurrent_jobs", jobs, now)
        if (queued := state.get("queued_items")) and queued["used"] + items > queued["limit"]:
            raise _exceeded(principal, "queued_items", queued | {"adding": items}, now)

    def check_training(self, principal: Principal) -> None:
        now = time.time()
        if (runs := self.state(principal, now).get("training_runs_per_day")) and runs["used"] >= runs["limit"]:
            raise _exceeded(principal, "training_runs_per_day", runs, now)


def _exceeded(principal: Principal, name: str, entry: dict, now: float) -> QuotaExceeded:
    resets = entry["resets_at"]
    adding = f" (+{entry['adding']} asked)" if "adding" in entry else ""
    when = (
        f"it resets in {resets - now:.0f} s ({time.strftime('%H:%M:%S', time.gmtime(resets))} UTC)"
        if resets is not None
        else "it frees up as your open jobs finish (cancel_job frees one now)"
    )
    message = (
        f"Quota exceeded: client `{principal.client}` has used {entry['used']}{adding} of its {name} quota of "
        f"{entry['limit']}; {when}. usage://me shows your usage and quotas."
    )
    return QuotaExceeded(message, resets - now if resets is not None else None)
