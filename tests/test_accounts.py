"""Accounts (issue 20): scrypt hashes checked against RFC 7914's own test vector, the auth
file (0600, no password in it), `python -m explorer users` as a person runs it, who a request
is, and the warning for a server others can reach without accounts."""

import json
import os
import stat
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

from explorer import accounts
from explorer.__main__ import is_loopback, main, open_access_warning

ROOT = Path(__file__).resolve().parent.parent

# RFC 7914 section 12, second vector: scrypt(P="password", S="NaCl", N=1024, r=8, p=16, 64).
RFC_VECTOR = ("fdbabe1c9d3472007856e7190d01e9fe7c6ad7cbc8237830e77376634b373162"
              "2eaf30d92e22a3886ff109279d9830dac727afb94a83ee6d8360cbdfa2cc0640")


def users_cli(*args: str, password: str | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "explorer", "users", *args],
                          input=None if password is None else password + "\n", cwd=ROOT,
                          capture_output=True, text=True, timeout=60)


# Hashes -------------------------------------------------------------------------------------

def test_verify_matches_rfc_7914s_test_vector():
    record = {"algorithm": "scrypt", "n": 1024, "r": 8, "p": 16, "salt": b"NaCl".hex(),
              "hash": RFC_VECTOR}
    assert accounts.verify(record, "password")
    assert not accounts.verify(record, "Password")
    assert not accounts.verify({**record, "algorithm": "md5"}, "password")
    assert not accounts.verify({**record, "salt": "zz"}, "password")  # unreadable: refused


def test_a_new_hash_is_salted_strong_and_verifies_only_its_password():
    first, second = accounts.hash_password("s3cret"), accounts.hash_password("s3cret")
    assert first["algorithm"] == "scrypt" and first["n"] >= 2**14 and first["r"] >= 8
    assert len(bytes.fromhex(first["salt"])) == 16 and first["salt"] != second["salt"]
    assert first["hash"] != second["hash"]  # same password, different salt
    assert accounts.verify(first, "s3cret") and accounts.verify(second, "s3cret")
    assert not accounts.verify(first, "s3cret ") and not accounts.verify(first, "")
    with pytest.raises(accounts.AccountError, match="must not be empty"):
        accounts.hash_password("")


@pytest.mark.parametrize("name", ["alice", "bob-2", "a.b_c", "x" * 32, "7"])
def test_good_names(name):
    assert accounts.check_name(name) == name


@pytest.mark.parametrize("name", ["", "Alice", "-bob", ".x", "a/b", "../x", "x" * 33, "a b",
                                  "local", "é", None])
def test_names_outside_the_one_rule_are_refused(name):
    with pytest.raises(accounts.AccountError, match="1 to 32 characters"):
        accounts.check_name(name)


# The file and the login check ------------------------------------------------------------------

def test_the_auth_file_is_private_and_holds_no_password(tmp_path):
    path = tmp_path / "users.json"
    accounts.write_users(path, {"alice": accounts.hash_password("correct horse")})
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert "correct horse" not in path.read_text()
    assert list(accounts.read_users(path)) == ["alice"]
    assert [p.name for p in tmp_path.iterdir()] == ["users.json"]  # no temporary left
    path.write_text("{not json")
    with pytest.raises(accounts.AccountError, match="is not an auth file"):
        accounts.read_users(path)


def test_login_check_reads_the_file_again_when_it_changes(tmp_path):
    path = tmp_path / "users.json"
    accounts.write_users(path, {"alice": accounts.hash_password("a-pass")})
    login = accounts.Accounts(path)
    assert login("alice", "a-pass") and not login("alice", "b-pass") and not login("bob", "b")
    users = accounts.read_users(path)
    users["bob"] = accounts.hash_password("b-pass")
    del users["alice"]
    accounts.write_users(path, users)
    assert login("bob", "b-pass") and not login("alice", "a-pass")
    with pytest.raises(accounts.AccountError, match="no users"):
        accounts.Accounts(tmp_path / "missing.json")


def test_who_a_request_is(tmp_path):
    path = tmp_path / "users.json"
    accounts.write_users(path, {"alice": accounts.hash_password("a")})
    login = accounts.Accounts(path)
    assert accounts.user_of(SimpleNamespace(username=None), None) == accounts.LOCAL_USER
    assert accounts.user_of(None, None) == accounts.LOCAL_USER
    assert accounts.user_of(SimpleNamespace(username="alice"), login) == "alice"
    with pytest.raises(accounts.AccountError, match="sign in first"):
        accounts.user_of(SimpleNamespace(username=None), login)
    accounts.write_users(path, {"bob": accounts.hash_password("b")})
    with pytest.raises(accounts.AccountError, match="'alice' no longer exists"):
        accounts.user_of(SimpleNamespace(username="alice"), login)


# `python -m explorer users` --------------------------------------------------------------------

def test_users_cli_add_replace_list_remove(tmp_path):
    path = str(tmp_path / "lab" / "users.json")
    done = users_cli("add", "alice", "--auth-file", path, "--password-stdin", password="first")
    assert done.returncode == 0 and "saved alice" in done.stdout, done.stderr
    assert accounts.Accounts(path)("alice", "first")
    again = users_cli("add", "alice", "--auth-file", path, "--password-stdin", password="x")
    assert again.returncode == 2 and "exists" in again.stderr and "--replace" in again.stderr
    assert accounts.Accounts(path)("alice", "first")  # unchanged
    replaced = users_cli("add", "alice", "--auth-file", path, "--password-stdin", "--replace",
                         password="second")
    assert replaced.returncode == 0
    assert accounts.Accounts(path)("alice", "second") and not accounts.Accounts(path)("alice", "first")
    users_cli("add", "bob", "--auth-file", path, "--password-stdin", password="b")
    assert users_cli("list", "--auth-file", path).stdout.split() == ["alice", "bob"]
    missing = users_cli("remove", "carol", "--auth-file", path)
    assert missing.returncode == 2 and "no user 'carol'" in missing.stderr
    assert users_cli("remove", "alice", "--auth-file", path).returncode == 0
    assert users_cli("list", "--auth-file", path).stdout.split() == ["bob"]
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600


@pytest.mark.parametrize("name,password,message", [
    ("Alice", "pw", "is not allowed"), ("local", "pw", "reserved"),
    ("alice", "", "must not be empty")])
def test_users_cli_refuses_bad_names_and_empty_passwords(tmp_path, name, password, message):
    path = tmp_path / "users.json"
    done = users_cli("add", name, "--auth-file", str(path), "--password-stdin",
                     password=password)
    assert done.returncode == 2 and message in done.stderr and "Traceback" not in done.stderr
    assert not path.exists()


# Starting a server others can reach --------------------------------------------------------------

@pytest.mark.parametrize("host,loopback", [
    ("127.0.0.1", True), ("127.0.0.2", True), ("localhost", True), ("::1", True),
    ("0.0.0.0", False), ("::", False), ("192.168.1.20", False), ("lab-gpu.example.org", False)])
def test_loopback(host, loopback):
    assert is_loopback(host) is loopback


def test_the_warning_says_who_can_use_the_app():
    assert open_access_warning("127.0.0.1", 7860, share=False) is None
    text = open_access_warning("0.0.0.0", 8080, share=False)
    assert "anyone who can reach this machine on port 8080" in text
    assert "stop and delete every run" in text and "--auth-file" in text
    shared = open_access_warning("127.0.0.1", 7860, share=True)
    assert "anyone who has the public gradio.live link" in shared


class _FakeApp:
    launched: dict = {}

    def launch(self, **kwargs):
        _FakeApp.launched = kwargs


def test_main_warns_without_accounts_and_signs_in_with_them(tmp_path, monkeypatch, capsys):
    import explorer.app

    monkeypatch.setattr(explorer.app, "create_app", lambda options: _FakeApp())
    common = ["--runs-dir", str(tmp_path / "runs"), "--data-dir", str(tmp_path)]
    assert main(["--host", "0.0.0.0", "--port", "9000", *common]) == 0
    assert "anyone who can reach this machine on port 9000" in capsys.readouterr().err
    assert "auth" not in _FakeApp.launched
    path = tmp_path / "users.json"
    accounts.write_users(path, {"alice": accounts.hash_password("a")})
    assert main(["--host", "0.0.0.0", "--auth-file", str(path), "--admin", "alice",
                 *common]) == 0
    assert "warning" not in capsys.readouterr().err
    assert _FakeApp.launched["auth"]("alice", "a") and not _FakeApp.launched["auth"]("alice", "b")


@pytest.mark.parametrize("flags,message", [
    (["--admin", "alice"], "--admin needs --auth-file"),
    (["--max-runs-per-user", "0"], "--max-runs-per-user must be an integer in [1, 1000], got 0"),
    (["--max-queue-per-device", "0"], "--max-queue-per-device must be an integer"),
])
def test_bad_sharing_flags_are_refused_by_name(tmp_path, capsys, flags, message):
    assert main(["--runs-dir", str(tmp_path), *flags]) == 2
    assert message in capsys.readouterr().err


def test_an_admin_must_be_a_user_and_the_auth_file_must_have_users(tmp_path, capsys):
    path = tmp_path / "users.json"
    accounts.write_users(path, {"alice": accounts.hash_password("a")})
    assert main(["--auth-file", str(path), "--admin", "bob"]) == 2
    assert "--admin bob: no such user" in capsys.readouterr().err
    assert main(["--auth-file", str(tmp_path / "none.json")]) == 2
    assert "has no users" in capsys.readouterr().err
    json.loads(path.read_text())  # untouched, still JSON
