"""Accounts for a server several people share: an auth file of salted scrypt hashes, the
check Gradio's login calls, who the user of a request is, and `python -m explorer users`.

The file is JSON, written atomically with mode 0600 (readable by the server's owner only):

    {"version": 1, "users": {"alice": {"algorithm": "scrypt", "n": 16384, "r": 8, "p": 1,
                                       "salt": "<32 hex>", "hash": "<64 hex>"}}}

No password is ever stored or logged: only scrypt's output for a random 16-byte salt (RFC
7914; n=2**14, r=8, p=1 are the parameters it calls interactive-login strength, ~16 MB and
tens of ms per check). Torch-free and quick to import: the app's start-up reads it.
"""

from __future__ import annotations

import argparse
import getpass
import hashlib
import hmac
import json
import os
import re
import secrets
import sys
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, TextIO

# Who uses an app started without --auth-file: one person at this machine, who may manage
# every run (the app is theirs). Reserved, so no account can take over those runs.
LOCAL_USER = "local"
# A user name: what runs record as their owner and messages print; lowercase, so "Alice"
# and "alice" cannot be two people.
NAME_RULE = re.compile(r"[a-z0-9][a-z0-9._-]{0,31}")
NAME_RULE_TEXT = ("1 to 32 characters: lowercase letters, digits, '.', '_' or '-', starting "
                  f"with a letter or digit; {LOCAL_USER!r} is reserved")
SCRYPT = {"n": 2**14, "r": 8, "p": 1}  # RFC 7914 section 2's interactive-login parameters
SALT_BYTES = 16
HASH_BYTES = 32
# scrypt needs 128 * r * n bytes (16 MB here); hashlib's default ceiling is 32 MB.
SCRYPT_MAXMEM = 64 * 2**20
FILE_VERSION = 1


class AccountError(ValueError):
    """A bad name, password or auth file: the message says which and why."""


def check_name(name: Any) -> str:
    if not isinstance(name, str) or not NAME_RULE.fullmatch(name) or name == LOCAL_USER:
        raise AccountError(f"user name {name!r} is not allowed: {NAME_RULE_TEXT}")
    return name


def hash_password(password: str) -> dict[str, Any]:
    """A new record for `password`: scrypt of it with a fresh random salt."""
    if not isinstance(password, str) or not password:
        raise AccountError("the password must not be empty")
    salt = secrets.token_bytes(SALT_BYTES)
    digest = _scrypt(password, salt, SCRYPT)
    return {"algorithm": "scrypt", **SCRYPT, "salt": salt.hex(), "hash": digest.hex()}


def verify(record: Mapping[str, Any], password: str) -> bool:
    """Whether `password` is the one `record` was made from (constant-time comparison)."""
    try:
        if record.get("algorithm") != "scrypt":
            return False
        params = {key: int(record[key]) for key in ("n", "r", "p")}
        salt, expected = bytes.fromhex(record["salt"]), bytes.fromhex(record["hash"])
        digest = _scrypt(password, salt, params, len(expected))
    except (KeyError, TypeError, ValueError, AttributeError):
        return False
    return hmac.compare_digest(digest, expected)


def _scrypt(password: str, salt: bytes, params: Mapping[str, int],
            length: int = HASH_BYTES) -> bytes:
    return hashlib.scrypt(password.encode("utf-8"), salt=salt, maxmem=SCRYPT_MAXMEM,
                          dklen=length, **params)


# The file ----------------------------------------------------------------------------------

def read_users(path: Path) -> dict[str, dict[str, Any]]:
    """The users of an auth file ({} when it does not exist yet); an AccountError names the
    file when it cannot be read as one."""
    path = Path(path)
    if not path.exists():
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        users = data["users"]
        if data.get("version") != FILE_VERSION or not isinstance(users, dict):
            raise ValueError(f"expected version {FILE_VERSION} and a 'users' object")
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise AccountError(f"{path} is not an auth file ({error})") from None
    return users


def write_users(path: Path, users: Mapping[str, Mapping[str, Any]]) -> None:
    """Replace the auth file atomically; it is created with mode 0600 (mkstemp's)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    text = json.dumps({"version": FILE_VERSION, "users": dict(sorted(users.items()))}, indent=2)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as file:
            file.write(text + "\n")
            file.flush()
            os.fsync(file.fileno())
        os.chmod(temporary, 0o600)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


@dataclass
class Accounts:
    """The server's accounts: Gradio's `auth=` callable, re-reading the file when it changes
    (a user added with `users add` can sign in at once; one removed can sign in no more,
    and is refused by the run actions at their next request)."""

    path: Path

    def __post_init__(self) -> None:
        self.path = Path(self.path)
        self._lock = threading.Lock()
        self._stamp: tuple[int, int] | None = None
        self._users: dict[str, dict[str, Any]] = {}
        self.users()  # a bad file is an error at start, not at the first login
        if not self._users:
            raise AccountError(f"{self.path} has no users: add one with `python -m explorer "
                               f"users add NAME --auth-file {self.path}`")

    def users(self) -> dict[str, dict[str, Any]]:
        try:
            stat = self.path.stat()
            stamp = (stat.st_mtime_ns, stat.st_size)
        except OSError:
            stamp = None
        with self._lock:
            if stamp != self._stamp:
                self._users, self._stamp = (read_users(self.path) if stamp else {}), stamp
            return self._users

    def has(self, name: str) -> bool:
        return name in self.users()

    def __call__(self, username: str, password: str) -> bool:
        """Gradio's login check. An unknown name costs a hash too: the answer's timing does
        not tell which names exist."""
        record = self.users().get(username)
        if record is None:
            verify(_DUMMY, password)
            return False
        return verify(record, password)


_DUMMY = {"algorithm": "scrypt", **SCRYPT, "salt": "00" * SALT_BYTES, "hash": "00" * HASH_BYTES}


def user_of(request: Any, accounts: Accounts | None) -> str:
    """Who sent `request`: its signed-in name, or LOCAL_USER when the app has no accounts.
    With accounts, a request without a user, or from a user removed since they signed in,
    is refused."""
    if accounts is None:
        return LOCAL_USER
    name = getattr(request, "username", None)
    if not name:
        raise AccountError("sign in first: this server has accounts")
    if not accounts.has(name):
        raise AccountError(f"the account {name!r} no longer exists on this server")
    return name


# `python -m explorer users ...` ---------------------------------------------------------------

def users_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m explorer users",
        description="Manage the accounts of an auth file (python -m explorer --auth-file "
                    "FILE). A running server reads the file again when it changes.")
    commands = parser.add_subparsers(dest="command", required=True)
    add = commands.add_parser("add", help="add a user (the password is asked for)")
    add.add_argument("name", help=f"the user name: {NAME_RULE_TEXT}")
    add.add_argument("--password-stdin", action="store_true",
                     help="read the password from the first line of standard input")
    add.add_argument("--replace", action="store_true",
                     help="set a new password for a user who exists")
    remove = commands.add_parser("remove", help="remove a user")
    remove.add_argument("name")
    commands.add_parser("list", help="list the user names")
    for command in (add, remove, commands.choices["list"]):
        command.add_argument("--auth-file", type=Path, required=True,
                             help="the auth file (created by the first `add`)")
    return parser


def read_password(from_stdin: bool, stdin: TextIO) -> str:
    """The new password: stdin's first line (its newline dropped), or asked twice."""
    if from_stdin:
        password = stdin.readline().rstrip("\r\n")
    else:
        password = getpass.getpass("Password: ")
        if getpass.getpass("Password again: ") != password:
            raise AccountError("the two passwords differ")
    if not password:
        raise AccountError("the password must not be empty")
    return password


def users_main(argv: list[str], stdin: TextIO = sys.stdin, out: TextIO = sys.stdout) -> int:
    args = users_parser().parse_args(argv)
    try:
        users = read_users(args.auth_file)
        if args.command == "list":
            out.write("".join(f"{name}\n" for name in users))
            return 0
        name = args.name if args.command == "remove" else check_name(args.name)
        if args.command == "remove":
            if name not in users:
                raise AccountError(f"no user {name!r} in {args.auth_file}")
            del users[name]
        else:
            if name in users and not args.replace:
                raise AccountError(f"{name!r} exists in {args.auth_file}: add --replace to "
                                   f"set a new password")
            users[name] = hash_password(read_password(args.password_stdin, stdin))
        write_users(args.auth_file, users)
    except AccountError as error:
        print(f"python -m explorer users: {error}", file=sys.stderr)
        return 2
    verb = "removed" if args.command == "remove" else "saved"
    out.write(f"{verb} {name} in {args.auth_file}\n")
    return 0
