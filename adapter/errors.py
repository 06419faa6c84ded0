"""One error vocabulary for the HTTP boundary: OpenAIError -> {"error": {message, type, param, code}}."""
from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException


class OpenAIError(Exception):
    def __init__(self, status: int, message: str, type: str, param: str | None = None, code: str | None = None,
                 headers: dict[str, str] | None = None):
        super().__init__(message)
        self.status, self.message, self.type, self.param, self.code = status, message, type, param, code
        self.headers = headers

    def body(self) -> dict:
        return {"error": {"message": self.message, "type": self.type, "param": self.param, "code": self.code}}


def invalid_request(message: str, param: str | None = None, code: str | None = None) -> OpenAIError:
    return OpenAIError(400, message, "invalid_request_error", param, code)


def model_not_found(model: str) -> OpenAIError:
    return OpenAIError(404, f"The model `{model}` does not exist or you do not have access to it.",
                       "invalid_request_error", "model", "model_not_found")


def service_unavailable(message: str) -> OpenAIError:
    return OpenAIError(503, message, "service_unavailable", None, "service_unavailable")


def internal_error(message: str) -> OpenAIError:
    return OpenAIError(500, message, "server_error", None, "internal_error")


def _is_type_tag(part: object) -> bool:
    """pydantic puts union members and validators in `loc` (`str`, `list[Part]`, `function-after[...]`)."""
    return isinstance(part, str) and (part in _TYPE_TAGS or "[" in part)


_TYPE_TAGS = {"str", "int", "float", "bool", "dict", "list", "none", "json-or-python", "tagged-union"}


def _param(loc: tuple) -> str | None:
    parts = [str(p) for p in loc if p != "body" and not _is_type_tag(p)]
    return ".".join(parts) or None


def _validation_message(exc: RequestValidationError) -> tuple[str, str | None]:
    err = exc.errors()[0]
    param = _param(tuple(err.get("loc", ())))
    msg = err.get("msg", "invalid request")
    if err.get("type") == "json_invalid":
        return "We could not parse the JSON body of your request.", None
    if err.get("type") == "missing" and param is None:  # no body at all (FastAPI reports the body as missing)
        return "The request has no body: send the parameters as a JSON object (Content-Type: application/json).", None
    if err.get("type") == "missing":
        return f"Missing required parameter: '{param}'.", param
    return f"Invalid value for '{param}': {msg}" if param else msg, param


async def _openai_error(_: Request, exc: OpenAIError) -> JSONResponse:
    return JSONResponse(exc.body(), status_code=exc.status, headers=exc.headers)


async def _validation_error(_: Request, exc: RequestValidationError) -> JSONResponse:
    message, param = _validation_message(exc)
    return await _openai_error(_, invalid_request(message, param))


async def _http_error(_: Request, exc: StarletteHTTPException) -> JSONResponse:
    if exc.status_code == 404:
        err = OpenAIError(404, "Unknown request URL. Please check the URL and method.", "invalid_request_error",
                          code="unknown_url")
    elif exc.status_code == 405:
        err = OpenAIError(405, f"Method not allowed: {exc.detail}", "invalid_request_error", code="method_not_allowed")
    else:
        err = OpenAIError(exc.status_code, str(exc.detail), "invalid_request_error")
    return await _openai_error(_, err)


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(OpenAIError, _openai_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
