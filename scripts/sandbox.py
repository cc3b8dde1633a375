"""`make run`'s sandbox: the outside systems of the reference scenario, on loopback, so that
`definitions/add_machine_to_backups.yaml` runs end to end on a fresh machine with nothing to set up.

    python scripts/sandbox.py DIR

starts, until it is stopped (or the process that started it ends):

* an SMTP server (aiosmtpd, with a login): every mail is kept as ``DIR/mail/NNNN.eml`` and listed in
  ``DIR/mail.log`` (recipients, subject and the links it carries, e.g. an approver's signed links);
* an endpoint that speaks Slack's incoming-webhook protocol: each post is a JSON line in
  ``DIR/slack.log``;
* the example backup product (``definitions/apis/specs/backup_product.openapi.yaml``): hosts, agents,
  agent installations, policies and backup clients, with its basic-auth and OAuth2 credentials;
* a ServiceNow instance speaking the Table API (tickets are opened, get work notes and are closed):
  each change is a line in ``DIR/servicenow.log``.

They are the same servers the tests use (tests/fixtures/). Then it writes ``DIR/connections.env``:
``export AIRFLOW_CONN_...`` lines for the connections the example needs (``smtp_default``,
``slack_default``, ``backup_api``, ``backup_clients``, ``servicenow_default``), leaving out any already set in the
environment: an exported ``AIRFLOW_CONN_SMTP_DEFAULT`` (say) wins. scripts/standalone.sh sources it.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import signal
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.fixtures.backup_product import CLIENT_ID, CLIENT_SECRET, PASSWORD, USER, BackupProduct  # noqa: E402
from tests.fixtures.servicenow import ServiceNow  # noqa: E402
from tests.fixtures.slack import SlackPost, SlackWebhook  # noqa: E402
from tests.fixtures.smtp import ReceivedMail, SmtpServer  # noqa: E402

LINK = re.compile(r"https?://[^\s\"'<>]+")


class Outbox:
    """Writes what the sandbox receives into its folder, one file or line per message."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        (folder / "mail").mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._count = len(list((folder / "mail").glob("*.eml")))

    def mail(self, mail: ReceivedMail) -> None:
        with self._lock:
            self._count += 1
            path = self.folder / "mail" / f"{self._count:04d}.eml"
            path.write_bytes(mail.message.as_bytes())
            links = sorted(set(LINK.findall(mail.text or "")))
            line = f"{time.strftime('%H:%M:%S')} {path.name} to {', '.join(mail.rcpt_tos)}: {mail.subject}\n"
            line += "".join(f"    {link}\n" for link in links)
            with (self.folder / "mail.log").open("a", encoding="utf-8") as log:
                log.write(line)

    def slack(self, post: SlackPost) -> None:
        with self._lock, (self.folder / "slack.log").open("a", encoding="utf-8") as log:
            log.write(json.dumps({"at": time.strftime("%H:%M:%S"), **post.body}) + "\n")

    def ticket(self, event: str, record: dict) -> None:
        journal = record.get("_journal") or []
        line = (
            f"{time.strftime('%H:%M:%S')} {record['number']} ({record['_table']}) {event}: state {record.get('state')}"
        )
        if record.get("request_state"):
            line += f" ({record['request_state']})"
        if event == "created" and record.get("short_description"):
            line += f" — {record['short_description']}"
        if journal:
            line += f"; last work note: {journal[-1]['value']}"
        with self._lock, (self.folder / "servicenow.log").open("a", encoding="utf-8") as log:
            log.write(line + "\n")


def connections(
    smtp: SmtpServer, slack: SlackWebhook, product: BackupProduct, servicenow: ServiceNow
) -> dict[str, dict]:
    where = {"conn_type": "autopilot_openapi", "host": product.host, "port": product.port, "schema": "http"}
    return {
        "smtp_default": smtp.connection(),
        "slack_default": slack.connection(),
        "backup_api": {**where, "login": USER, "password": PASSWORD},
        "backup_clients": {**where, "login": CLIENT_ID, "password": CLIENT_SECRET},
        "servicenow_default": servicenow.connection(),
    }


def main(folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    outbox = Outbox(folder)
    smtp = SmtpServer(on_mail=outbox.mail)
    slack = SlackWebhook(on_post=outbox.slack)
    product = BackupProduct()
    servicenow = ServiceNow(on_change=outbox.ticket)
    smtp.start()
    slack.start()
    product.start()
    servicenow.start()

    lines = []
    for conn_id, conn in connections(smtp, slack, product, servicenow).items():
        variable = f"AIRFLOW_CONN_{conn_id.upper()}"
        if variable not in os.environ:
            lines.append(f"export {variable}={shlex.quote(json.dumps(conn))}\n")
    written = folder / "connections.env"
    partial = written.with_suffix(".partial")
    partial.write_text("".join(lines), encoding="utf-8")
    partial.replace(written)  # the starter waits for the whole file

    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    parent = os.getppid()
    try:
        while not stop.wait(1) and os.getppid() == parent:  # ends with the Airflow it serves
            pass
    finally:
        servicenow.stop()
        product.stop()
        slack.stop()
        smtp.stop()


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: python scripts/sandbox.py FOLDER")
    main(Path(sys.argv[1]))
