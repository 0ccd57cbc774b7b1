"""Generation jobs: rows in SQLite (the truth) and the asyncio tasks that run them in this process.

A job row is written before any provider is called, with the caller's `request_id` under a unique
index, so concurrent calls with one `request_id` make exactly one provider call: the losers read the
winner's row and wait for it. The row also keeps `request_hash`, the hash of the request's parameters,
so a key reused for a different request is refused rather than answered with another request's image. The `owner` column names the process running the job; at start-up only
jobs whose owner process is gone are resumed (where the provider allows) or marked failed.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import socket
import sqlite3
import uuid
from collections.abc import Coroutine
from typing import Any, TypedDict, cast

import psutil

from context_server.adapters.store import Store, now_iso
from context_server.domain.paging import decode_cursor, page
from context_server.errors import NotFound
from context_server.models import JobStatus

__all__ = ["PROCESS_OWNER", "JobRow", "JobRunner", "Jobs", "owner_is_alive"]

PROCESS_OWNER = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


class JobRow(TypedDict):
    """A row of the `jobs` table (`select *`)."""

    id: str
    user_id: str
    request_id: str | None
    request_hash: str | None
    #: "generate" or "edit" (None in rows written before edits were jobs).
    kind: str | None
    status: JobStatus
    progress: float | None
    #: JSON: the provider request and the caller's input (`{"input": ...}`), to resume or compare a repeat.
    params: str | None
    #: JSON of the finished `GenerateResult`.
    result: str | None
    error: str | None
    provider: str | None
    model: str | None
    provider_job_id: str | None
    image_id: str | None
    incognito: int | None
    created_at: str
    updated_at: str | None
    owner: str | None
    kind_detail: str | None


def owner_is_alive(owner: str | None) -> bool:
    if not owner:
        return False
    host, _, rest = owner.partition(":")
    pid_text = rest.partition(":")[0]
    if owner == PROCESS_OWNER:
        return True
    if host != socket.gethostname() or not pid_text.isdigit():
        return True  # another machine: assume alive, never steal its work
    # psutil, not os.kill(pid, 0): on Windows that call terminates the process it was meant to probe.
    return bool(psutil.pid_exists(int(pid_text)))


class Jobs:
    """SQL for the `jobs` table; every method is scoped by user."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def create(self, user_id: str, job_id: str, *, request_id: str | None, kind: str, params: dict[str, Any],
               provider: str, model: str, incognito: bool, request_hash: str | None = None) -> bool:
        """Insert a running job; False when this user already has a job with `request_id`."""
        now = now_iso()
        try:
            with self.store.write() as db:
                db.table("jobs").insert({
                    "id": job_id, "user_id": user_id, "request_id": request_id, "request_hash": request_hash,
                    "kind": kind,
                    "status": "running", "progress": 0.0, "params": json.dumps(params),
                    "provider": provider, "model": model, "incognito": int(incognito),
                    "owner": PROCESS_OWNER, "created_at": now, "updated_at": now,
                })
        except sqlite3.IntegrityError:
            return False
        return True

    def get(self, user_id: str, job_id: str) -> JobRow:
        row = self.store.one("select * from jobs where id = ? and user_id = ?", [job_id, user_id])
        if row is None:
            raise NotFound(f"no generation job {job_id!r}")
        return cast("JobRow", row)

    def by_request(self, user_id: str, request_id: str) -> JobRow | None:
        return cast("JobRow | None", self.store.one("select * from jobs where user_id = ? and request_id = ?", [user_id, request_id]))

    def set_progress(self, user_id: str, job_id: str, progress: float) -> None:
        with self.store.write() as db:
            db.execute(
                "update jobs set progress = ?, updated_at = ? where id = ? and user_id = ? and status = 'running'",
                [progress, now_iso(), job_id, user_id],
            )

    def set_provider_job_id(self, user_id: str, job_id: str, provider_job_id: str) -> None:
        with self.store.write() as db:
            db.execute("update jobs set provider_job_id = ? where id = ? and user_id = ?",
                       [provider_job_id, job_id, user_id])

    @staticmethod
    def complete(db: Any, user_id: str, job_id: str, image_id: str, result_json: str, now: str) -> None:
        """Inside the transaction that records the image (`db`): the job and its image land together."""
        db.execute(
            "update jobs set status = 'completed', progress = 1.0, image_id = ?, result = ?, updated_at = ? "
            "where id = ? and user_id = ?",
            [image_id, result_json, now, job_id, user_id],
        )

    def save_result(self, user_id: str, job_id: str, result_json: str) -> None:
        with self.store.write() as db:
            db.execute("update jobs set result = ? where id = ? and user_id = ?", [result_json, job_id, user_id])

    def fail(self, user_id: str, job_id: str, error: str) -> None:
        with self.store.write() as db:
            db.execute(
                "update jobs set status = 'failed', error = ?, updated_at = ? where id = ? and user_id = ?",
                [error, now_iso(), job_id, user_id],
            )

    def recent(self, user_id: str, limit: int, cursor: str | None = None) -> tuple[list[JobRow], str | None]:
        """This user's jobs, newest first: a page and the cursor of the next one."""
        before = decode_cursor(cursor)
        sql = "select * from jobs where user_id = ? and incognito = 0"
        params: list[Any] = [user_id]
        if before:
            sql += " and (created_at < ? or (created_at = ? and id < ?))"
            params += [before[0], before[0], before[1]]
        sql += " order by created_at desc, id desc limit ?"
        return page(cast("list[JobRow]", self.store.query(sql, [*params, limit + 1])), limit)

    def interrupted(self) -> list[JobRow]:
        """Running jobs (any user) whose owning process is gone."""
        rows = cast("list[JobRow]", self.store.query("select * from jobs where status = 'running'"))
        return [r for r in rows if not owner_is_alive(r["owner"])]

    def adopt(self, user_id: str, job_id: str) -> None:
        with self.store.write() as db:
            db.execute("update jobs set owner = ? where id = ? and user_id = ?", [PROCESS_OWNER, job_id, user_id])


class JobRunner:
    """The asyncio tasks behind running jobs in this process."""

    def __init__(self) -> None:
        self._tasks: dict[str, asyncio.Task[Any]] = {}

    def spawn(self, job_id: str, coro: Coroutine[Any, Any, Any]) -> asyncio.Task[Any]:
        task = asyncio.get_running_loop().create_task(coro, name=f"job-{job_id}")
        self._tasks[job_id] = task
        task.add_done_callback(lambda _t: self._tasks.pop(job_id, None))
        return task

    def running_here(self, job_id: str) -> asyncio.Task[Any] | None:
        return self._tasks.get(job_id)

    async def wait(self, job_id: str, timeout: float) -> None:
        task = self._tasks.get(job_id)
        if task is None:
            return
        try:
            await asyncio.wait_for(asyncio.shield(task), timeout)
        except TimeoutError:
            return
        except Exception:
            return  # the task records its own failure in the job row

    async def aclose(self) -> None:
        tasks = list(self._tasks.values())
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(BaseException):
                await task
