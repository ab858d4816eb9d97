"""JSON request bodies: a body that cannot be read is a 400, whatever the reason."""

from __future__ import annotations

import json
from typing import Any

from flask.json.provider import DefaultJSONProvider
from webargs import core
from webargs.flaskparser import FlaskParser, is_json_request


def loads(data: str | bytes) -> Any:
    """json.loads, with Python's own limits reported as JSON errors."""
    try:
        return json.loads(data)
    except json.JSONDecodeError:
        raise
    except (ValueError, RecursionError) as exc:
        # An integer over 4,300 digits (ValueError) or nesting deeper than the recursion
        # limit: valid JSON that Python will not build. Callers handle JSONDecodeError.
        raise json.JSONDecodeError(f"Unreadable JSON ({type(exc).__name__})", "", 0) from None


class JSONProvider(DefaultJSONProvider):
    """Flask's request.get_json() with the same limits as the argument parser."""

    def loads(self, s: str | bytes, **kwargs: Any) -> Any:
        return loads(s)


class ArgumentsParser(FlaskParser):
    """flask-smorest's request parser, reading JSON bodies with `loads`."""

    def _raw_load_json(self, req) -> Any:
        if not is_json_request(req):
            return core.missing
        data = req.get_data(cache=True)
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise json.JSONDecodeError(f"Not UTF-8: {exc.reason}", "", exc.start) from None
        return loads(text)
