"""Typed errors of the core and their wire form across the Triton boundary.

A ClientError is the caller's fault (too long, bad token id, ...). The Triton shell sends it as a TritonError
whose message embeds a small JSON object; the adapter finds that object (Triton may prefix the message, e.g.
"in ensemble 'x', ...") and answers 400 in the OpenAI envelope with the same message, param and code.
"""
from __future__ import annotations

import json

_KEY = '{"client_error":'


class ClientError(Exception):
    def __init__(self, message: str, param: str | None = None, code: str | None = None):
        super().__init__(message)
        self.message, self.param, self.code = message, param, code

    def to_wire(self) -> str:
        return json.dumps({"client_error": {"message": self.message, "param": self.param, "code": self.code}})

    @classmethod
    def from_wire(cls, text: str) -> "ClientError | None":
        start = text.find(_KEY)
        if start < 0:
            return None
        try:
            obj, _ = json.JSONDecoder().raw_decode(text[start:])
            err = obj["client_error"]
            return cls(err["message"], err.get("param"), err.get("code"))
        except (ValueError, KeyError, TypeError):
            return None
