"""The Jupyter messaging protocol as a kernel's websocket speaks it (Jupyter Server's JSON text frames).

`execute_request` builds the message for one cell; `CellExecution` reads the
kernel's messages for it. A cell is done when BOTH its `execute_reply` and
the kernel's `status: idle` for that request have arrived (the reply can
come before the last output). An `error` message names the exception; a
`status` of `dead` or `restarting` means the kernel died under the cell.
Messages for other requests are ignored.

Frames without a subprotocol are JSON text; binary frames carry messages
with binary buffers (rich outputs), which never hold the reply or status.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

PROTOCOL_VERSION = "5.3"
DEAD_STATES = ("dead", "restarting")

CellStatus = Literal["ok", "error", "timeout", "died"]


def execute_request(code: str, session: str) -> dict[str, Any]:
    """An execute_request for `code` on the shell channel, with a new msg_id."""
    return {
        "header": {
            "msg_id": uuid.uuid4().hex,
            "msg_type": "execute_request",
            "username": "hubship-loadtest",
            "session": session,
            "date": datetime.now(UTC).isoformat(),
            "version": PROTOCOL_VERSION,
        },
        "parent_header": {},
        "metadata": {},
        "content": {
            "code": code,
            "silent": False,
            "store_history": True,
            "user_expressions": {},
            "allow_stdin": False,
            "stop_on_error": True,
        },
        "channel": "shell",
        "buffers": [],
    }


def parse_frame(frame: str | bytes) -> dict[str, Any] | None:
    """The message in a text frame; None for binary frames and text that is not a JSON object."""
    if isinstance(frame, bytes):
        return None
    try:
        message = json.loads(frame)
    except ValueError:
        return None
    return message if isinstance(message, dict) else None


@dataclass
class CellExecution:
    """What the kernel said about one execute_request, message by message."""

    msg_id: str
    replied: bool = False
    idle: bool = False
    died: bool = False
    ename: str = ""
    evalue: str = ""
    stdout: list[str] = field(default_factory=list)

    @property
    def done(self) -> bool:
        return self.died or (self.replied and self.idle)

    @property
    def status(self) -> CellStatus:
        if self.died:
            return "died"
        return "error" if self.ename else "ok"

    def feed(self, message: dict[str, Any]) -> None:
        """Take one message from the websocket into account."""
        kind = message.get("msg_type") or message.get("header", {}).get("msg_type")
        content = message.get("content") or {}
        if kind == "status" and content.get("execution_state") in DEAD_STATES:
            # A dying kernel's status has no parent: it ends whatever was running.
            self.died = True
            return
        if (message.get("parent_header") or {}).get("msg_id") != self.msg_id:
            return
        if kind == "status" and content.get("execution_state") == "idle":
            self.idle = True
        elif kind == "execute_reply":
            self.replied = True
            if content.get("status") == "error" and not self.ename:
                self.ename = str(content.get("ename") or "Error")
                self.evalue = str(content.get("evalue") or "")
        elif kind == "error":
            self.ename = str(content.get("ename") or "Error")
            self.evalue = str(content.get("evalue") or "")
        elif kind == "stream" and content.get("name") == "stdout":
            self.stdout.append(str(content.get("text", "")))
