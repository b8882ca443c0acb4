"""Dovecot as a throwaway IMAP server: for the tests, and for `switchboard demo` where
Debian's `dovecot-imapd` is installed (otherwise the demo uses connectors/email/sandbox_imap).

Started as a foreground process (`dovecot -F -c …`) on a free loopback port with a Maildir
store under a temporary directory and a passwd-file passdb with one file per user
(`<root>/users/<user>`, a `{PLAIN}` password): each test (or demo) user is added with
`add_user` and has a mailbox of its own, and `set_password` changes a password while the
server runs. One file per user because Dovecot looks at a passwd-file at most once a second
(and then only when its mtime or size changed): a user added to a shared file could not log in
during the second after another login. Dovecot 2.4 (Debian 13)
rejects 2.3-style settings, so the configuration is written for the installed version
(`dovecot --version`). Run as root (CI), Dovecot needs unprivileged users for its login and
internal processes (`dovenull`, `dovecot`, which the package creates) and refuses UID 0 for
mail access, so the store belongs to `nobody`; run as another user, every process runs as
that user.
"""

from __future__ import annotations

import contextlib
import grp
import os
import pwd
import re
import shutil
import socket
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from imapclient import IMAPClient

PASSWORD = "correct-horse-battery-staple"  # noqa: S105 - a test login; no spaces (see below)
APT_PACKAGE = "dovecot-imapd"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def dovecot_version(binary: str) -> tuple[int, int]:
    out = subprocess.run([binary, "--version"], capture_output=True, text=True, check=True,
                         timeout=10).stdout
    match = re.match(r"\s*(\d+)\.(\d+)", out)
    if not match:
        raise RuntimeError(f"cannot read the Dovecot version from {out!r}")
    return int(match.group(1)), int(match.group(2))


def _group_of(user: pwd.struct_passwd) -> str:
    try:
        return grp.getgrgid(user.pw_gid).gr_name
    except KeyError:
        return str(user.pw_gid)


def _users() -> dict[str, str]:
    """Which system users run what; see the module docstring."""
    if os.geteuid() != 0:
        me = pwd.getpwuid(os.geteuid())
        return {"internal": me.pw_name, "group": _group_of(me), "login": me.pw_name,
                "uid": str(me.pw_uid), "gid": str(me.pw_gid)}

    def first(*names: str) -> pwd.struct_passwd:
        for name in names:
            try:
                return pwd.getpwnam(name)
            except KeyError:
                continue
        raise RuntimeError(f"none of the users {names} exists")

    internal = first("dovecot", "nobody")
    nobody = first("nobody")
    return {"internal": internal.pw_name, "group": _group_of(internal),
            "login": first("dovenull", "nobody").pw_name,
            "uid": str(nobody.pw_uid), "gid": str(nobody.pw_gid)}


def config_23(root: Path, port: int, users: dict[str, str]) -> str:
    """Dovecot 2.3 (Debian 12)."""
    return f"""\
base_dir = {root}/run
state_dir = {root}/state
log_path = {root}/dovecot.log
protocols = imap
listen = 127.0.0.1
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain login
# No delay after a failed login: the tests log in with wrong passwords on purpose.
auth_failure_delay = 0
default_internal_user = {users['internal']}
default_internal_group = {users['group']}
default_login_user = {users['login']}
first_valid_uid = 0
mail_location = maildir:{root}/mail/%u
mailbox_idle_check_interval = 1 secs
passdb {{
  driver = passwd-file
  args = {root}/users/%u
}}
userdb {{
  driver = static
  args = uid={users['uid']} gid={users['gid']} home={root}/home/%u
}}
service imap-login {{
  chroot =
  inet_listener imap {{
    address = 127.0.0.1
    port = {port}
  }}
  inet_listener imaps {{
    port = 0
  }}
}}
# No growing penalty for the loopback address after failures either
# (https://doc.dovecot.org/latest/core/config/auth/penalty.html); no chroot for the login and
# anvil processes, which a non-root Dovecot cannot do.
service anvil {{
  chroot =
  unix_listener anvil-auth-penalty {{
    mode = 0
  }}
}}
service stats {{
  unix_listener stats-reader {{
    mode = 0666
  }}
  unix_listener stats-writer {{
    mode = 0666
  }}
}}
"""


def config_24(root: Path, port: int, users: dict[str, str]) -> str:
    """Dovecot 2.4 names: https://doc.dovecot.org/latest/installation/upgrade/2.3-to-2.4.html
    (mail_driver/mail_path for mail_location, auth_allow_cleartext for
    disable_plaintext_auth, `listen` inside inet_listener, named passdb/userdb sections)."""
    return f"""\
dovecot_config_version = 2.4.0
dovecot_storage_version = 2.4.0
base_dir = {root}/run
state_dir = {root}/state
log_path = {root}/dovecot.log
protocols {{
  imap = yes
}}
listen = 127.0.0.1
ssl = no
auth_allow_cleartext = yes
auth_mechanisms = plain login
# No delay after a failed login: the tests log in with wrong passwords on purpose.
auth_failure_delay = 0
default_internal_user = {users['internal']}
default_internal_group = {users['group']}
default_login_user = {users['login']}
first_valid_uid = 0
mail_driver = maildir
mail_home = {root}/home/%{{user}}
mail_path = {root}/mail/%{{user}}
mail_uid = {users['uid']}
mail_gid = {users['gid']}
mailbox_idle_check_interval = 1s
passdb passwd-file {{
  passwd_file_path = {root}/users/%{{user}}
}}
userdb static {{
  fields {{
    uid = {users['uid']}
    gid = {users['gid']}
    home = {root}/home/%{{user}}
  }}
}}
service imap-login {{
  chroot =
  inet_listener imap {{
    listen = 127.0.0.1
    port = {port}
  }}
  inet_listener imaps {{
    port = 0
  }}
}}
# No growing penalty for the loopback address after failures either
# (https://doc.dovecot.org/latest/core/config/auth/penalty.html); no chroot for the login and
# anvil processes, which a non-root Dovecot cannot do.
service anvil {{
  chroot =
  unix_listener anvil-auth-penalty {{
    mode = 0
  }}
}}
service stats {{
  unix_listener stats-reader {{
    mode = 0666
  }}
  unix_listener stats-writer {{
    mode = 0666
  }}
}}
"""


@dataclass
class Dovecot:
    host: str
    port: int
    root: Path
    process: subprocess.Popen[bytes]

    password: str = PASSWORD  # what `add_user` gives a user unless told otherwise
    _passwords: dict[str, str] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def _write(self, user: str, password: str) -> None:
        """The user's passwd-file, replaced at once, with an mtime Dovecot has not seen (it
        compares whole seconds and the size; a new password may keep the size)."""
        if any(c in password + user for c in ":\r\n/") or user.startswith("."):
            raise ValueError("a passwd-file user or password cannot hold ':', '/' or a "
                             "line break")
        path = self.root / "users" / user
        before = path.stat().st_mtime if path.exists() else 0.0
        scratch = path.with_name(f".{user}.tmp")
        scratch.write_text(f"{user}:{{PLAIN}}{password}\n")
        os.chmod(scratch, 0o644)
        stamp = max(time.time(), before + 1.0)
        os.utime(scratch, (stamp, stamp))
        os.replace(scratch, path)

    def add_user(self, user: str, password: str | None = None) -> str:
        with self._lock:
            self._passwords[user] = password or self.password
            self._write(user, self._passwords[user])
        return user

    def set_password(self, user: str, password: str) -> None:
        """The mailbox's password changes (an admin rotated it): the old one is refused from
        now on. Waits out the second in which Dovecot may still answer from what it read."""
        self.add_user(user, password)
        time.sleep(1.1)

    def password_of(self, user: str) -> str:
        with self._lock:
            if user not in self._passwords:
                self._passwords[user] = self.password
                self._write(user, self.password)
            return self._passwords[user]

    def new_user(self) -> str:
        return self.add_user(f"u{uuid.uuid4().hex[:10]}@acme.example")

    @contextlib.contextmanager
    def client(self, user: str) -> Iterator[IMAPClient]:
        client = IMAPClient(self.host, port=self.port, ssl=False, timeout=10)
        client.login(user, self.password_of(user))
        try:
            yield client
        finally:
            with contextlib.suppress(Exception):
                client.logout()

    def append(self, user: str, raw: bytes, folder: str = "INBOX",
               when: datetime | None = None) -> int:
        """IMAP APPEND (what a delivery looks like to an IDLE client); returns the UID."""
        data = re.sub(rb"\r?\n", b"\r\n", raw)
        with self.client(user) as client:
            if folder != "INBOX" and not client.folder_exists(folder):
                client.create_folder(folder)
            answer = client.append(folder, data, msg_time=when)
        match = re.search(rb"APPENDUID \d+ (\d+)", answer)
        return int(match.group(1)) if match else 0

    def recreate(self, user: str, folder: str) -> None:
        """Delete and create a folder again: a new UIDVALIDITY, its mails gone."""
        with self.client(user) as client:
            if client.folder_exists(folder):
                client.delete_folder(folder)
            client.create_folder(folder)

    def uidvalidity(self, user: str, folder: str = "INBOX") -> int:
        with self.client(user) as client:
            return int(client.folder_status(folder, [b"UIDVALIDITY"])[b"UIDVALIDITY"])


def _wait_for_port(port: int, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"dovecot exited ({process.returncode}): "
                               f"{process.stderr.read().decode() if process.stderr else ''}"
                               f"{log.read_text() if log.exists() else ''}")
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise RuntimeError("dovecot did not start listening within 15 s")


def find_binary() -> str | None:
    found = shutil.which("dovecot")
    if found:
        return found
    return "/usr/sbin/dovecot" if Path("/usr/sbin/dovecot").exists() else None


def start_dovecot(root: Path, password: str | None = None) -> Dovecot:
    binary = find_binary()
    if binary is None:
        raise FileNotFoundError(f"dovecot is not installed (apt-get install -y {APT_PACKAGE})")
    users = _users()
    for sub in ("run", "state", "mail", "home"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    if os.geteuid() == 0:
        for sub in ("mail", "home"):
            os.chown(root / sub, int(users["uid"]), int(users["gid"]))
        os.chmod(root, 0o755)  # noqa: S103 - Dovecot's unprivileged processes enter it
    port = free_port()
    major, minor = dovecot_version(binary)
    make = config_24 if (major, minor) >= (2, 4) else config_23
    config = root / "dovecot.conf"
    config.write_text(make(root, port, users))
    (root / "users").mkdir(exist_ok=True)  # one passwd-file per user: Dovecot.add_user
    process = subprocess.Popen([binary, "-F", "-c", str(config)], stdout=subprocess.DEVNULL,
                               stderr=subprocess.PIPE)
    _wait_for_port(port, process, root / "dovecot.log")
    return Dovecot("127.0.0.1", port, root, process, password or PASSWORD)


def stop_dovecot(server: Dovecot) -> None:
    server.process.terminate()
    try:
        server.process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        server.process.kill()
        server.process.wait(timeout=5)
    shutil.rmtree(server.root, ignore_errors=True)
