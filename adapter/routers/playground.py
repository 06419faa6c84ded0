"""GET / and /playground: one self-contained HTML page (no build step, no external assets) to try every model.

The page holds no data, so it is exempt from auth by default; the API calls it makes carry the key typed into it.
"""
from functools import lru_cache
from importlib.resources import files

from fastapi import APIRouter
from fastapi.responses import HTMLResponse

from adapter.paths import PLAYGROUND, ROOT

router = APIRouter(include_in_schema=False)


@lru_cache(maxsize=1)
def page() -> str:
    return files("adapter").joinpath("static/playground.html").read_text(encoding="utf-8")


@router.get(ROOT)
@router.get(PLAYGROUND)
async def playground() -> HTMLResponse:
    return HTMLResponse(page(), headers={"Cache-Control": "no-cache"})
