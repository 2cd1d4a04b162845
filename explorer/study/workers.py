"""A study's local workers: `python -m resnext.study work NAME` child processes, one per
device, and what the Study tab reads of a study (the library's report, listing and CSV).

Like the Train tab's runs, each worker is a child process in its own session (a Ctrl-C to
the app does not reach it, and a crash in training cannot take the app down), at a lower
priority, with its output in a log file. Its pid is written at once to
`<runs dir>/.study-workers/<study>.json`, so a reloaded page and a restarted server find the
workers again (the folder is hidden: the runs table lists run folders only). Stop sends
SIGTERM, on which a worker ends its trial at the next step and queues it again
(`resnext.study.__main__.StopFlag`). Who may start or stop a study's workers is the runs'
rule (`resnext.train.runs.check_owner`): the study's owner, or an admin.

The study itself lives in its storage (`resnext.study`): the trials a worker on another
machine runs against the same storage appear in the report like the local ones.
"""

from __future__ import annotations

import json
import os
import re
import signal
import threading
import time
from pathlib import Path
from typing import Any, Collection, Sequence

from resnext import study
from resnext.study.spec import NAME_PATTERN, OWNER_ATTR
from resnext.train import runs

from ..accounts import LOCAL_USER
from ..shared.children import start_child

WORKERS_FOLDER = ".study-workers"
WORKER_MODULE = "resnext.study"


def worker_alive(pid: Any) -> bool:
    """Whether `pid` is a live (not zombie) `python -m resnext.study` process."""
    return runs.process_alive(pid, WORKER_MODULE)


class StudyWorkers:
    """The app's one keeper of study workers (shared by every session: `_lock`)."""

    def __init__(self, runs_dir: Path, storage: str | None = None,
                 admins: Collection[str] = (LOCAL_USER,)) -> None:
        self.runs_dir = Path(runs_dir)
        self.storage = storage  # None: resnext.study's default, a file in the runs directory
        self.admins = frozenset(admins)
        self._lock = threading.Lock()

    # What the library says --------------------------------------------------------------

    def studies(self) -> list[dict[str, Any]]:
        """Every study in the storage (made here, by the CLI, or on other machines)."""
        return study.studies(self.storage, self.runs_dir)

    def report(self, name: str) -> dict[str, Any]:
        """`resnext.study.report` (= `show --json`), plus this server's workers of it."""
        result = study.report(name, self.storage, self.runs_dir)
        result["workers"] = self.workers(name)
        return result

    def create(self, spec: Any, devices: Sequence[str], user: str) -> dict[str, Any]:
        """Write the study (owned by `user`) into the storage, then start its workers."""
        made = study.create(spec, self.storage, self.runs_dir, owner=user)
        made["workers"] = self.start(spec.name, devices, user)
        return made

    def authorize(self, name: str, user: str, action: str) -> None:
        """The runs' rule, on the study's recorded owner; a RunAccessError says why not."""
        from resnext.study import storage as stores

        found = stores.load(stores.open_storage(self.storage, self.runs_dir), name)
        runs.check_owner(f"study {name}", found.user_attrs.get(OWNER_ATTR), user,
                         self.admins, action)

    # Workers ------------------------------------------------------------------------------

    def _file(self, name: str) -> Path:
        # Only a name resnext.study could have made becomes a file name (no "../").
        if not isinstance(name, str) or not re.fullmatch(NAME_PATTERN, name):
            raise ValueError(f"study: {name!r} is not a study name this app runs workers for")
        return self.runs_dir / WORKERS_FOLDER / f"{name}.json"

    def _read(self, name: str) -> list[dict[str, Any]]:
        try:
            return list(json.loads(self._file(name).read_text())["workers"])
        except (OSError, ValueError, KeyError, TypeError):
            return []

    def _write(self, name: str, workers: list[dict[str, Any]]) -> None:
        path = self._file(name)
        path.parent.mkdir(parents=True, exist_ok=True)
        temporary = path.with_suffix(".tmp")
        temporary.write_text(json.dumps({"study": name, "workers": workers}, indent=2))
        temporary.replace(path)  # atomic: a reader sees the old list or the new one

    def workers(self, name: str) -> list[dict[str, Any]]:
        """This server's (or an earlier one's) workers of study `name`, each with "alive"."""
        return [{**worker, "alive": worker_alive(worker.get("pid"))}
                for worker in self._read(name)]

    def busy_devices(self) -> dict[str, str]:
        """device -> the study a live local worker works on there."""
        busy = {}
        for path in sorted((self.runs_dir / WORKERS_FOLDER).glob("*.json")):
            for worker in self.workers(path.stem):
                if worker["alive"]:
                    busy[worker["device"]] = path.stem
        return busy

    def start(self, name: str, devices: Sequence[str], user: str) -> list[dict[str, Any]]:
        """One worker per device for study `name` (its owner or an admin only); a device
        that already runs a local worker of a study is refused, naming the study."""
        devices = list(dict.fromkeys(devices or []))
        if not devices:
            raise ValueError("devices: choose at least one device to run a worker on")
        self.authorize(name, user, "start workers for")
        with self._lock:
            busy = {d: s for d, s in self.busy_devices().items() if d in devices}
            if busy:
                taken = ", ".join(f"{d} (study {s})" for d, s in busy.items())
                raise ValueError(f"devices: a worker already runs on {taken}; stop it first "
                                 f"or choose another device")
            kept = [w for w in self.workers(name) if w["alive"]]
            started = [self._launch(name, device, user) for device in devices]
            self._write(name, [{k: v for k, v in w.items() if k != "alive"}
                               for w in kept + started])
        return started

    def _launch(self, name: str, device: str, user: str) -> dict[str, Any]:
        log_path = self._file(name).with_name(f"{name}-{re.sub(r'[^a-z0-9]', '', device)}.log")
        log_path.parent.mkdir(parents=True, exist_ok=True)
        args = ["work", name, "--runs-dir", str(self.runs_dir.resolve()), "--device", device]
        if self.storage is not None:
            args += ["--storage", self.storage]
        process = start_child(WORKER_MODULE, args, log_path)
        # Reap it when it ends (else it stays a zombie of this server until the server ends).
        threading.Thread(target=process.wait, daemon=True, name=f"study-{name}").start()
        return {"device": device, "pid": process.pid, "owner": user, "log": str(log_path),
                "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}

    def stop(self, name: str, user: str) -> str:
        """SIGTERM to the study's local workers (its owner or an admin only): each queues
        its running trial again and ends. Trials already finished stay."""
        self.authorize(name, user, "stop")
        alive = [w for w in self.workers(name) if w["alive"]]
        for worker in alive:
            try:
                os.killpg(worker["pid"], signal.SIGTERM)  # its own session: pgid = pid
            except ProcessLookupError:
                pass
        if not alive:
            return f"study {name} has no worker running on this server."
        where = ", ".join(w["device"] for w in alive)
        return (f"Stopping {len(alive)} worker(s) of study {name} ({where}): each running "
                f"trial goes back to the queue; finished trials stay.")

    def log_tail(self, name: str, lines: int = 5) -> str:
        """The last lines of the study's worker logs (what a failed start says)."""
        tails = []
        for worker in self._read(name):
            try:
                text = Path(worker["log"]).read_text(errors="replace").splitlines()
            except (OSError, KeyError):
                continue
            tails += [f"[{worker['device']}] {line}" for line in text[-lines:]]
        return "\n".join(tails)
