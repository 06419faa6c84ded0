"""Headless Debian chromium driven by selenium through Debian's chromedriver (never a downloaded browser)."""
from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

INSTALL_SCRIPT = Path(__file__).with_name("install_chromium.sh")
# Flags this kind of machine needs: no sandbox as root, no GPU, and no background network traffic.
FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--disable-dev-shm-usage", "--window-size=1280,1000")


def ensure_chromium() -> str | None:
    """None once chromium and chromedriver are on PATH (installing them when missing), else why not."""
    try:
        result = subprocess.run(["sh", str(INSTALL_SCRIPT)], capture_output=True, text=True, timeout=900)
    except subprocess.TimeoutExpired:
        return "installing chromium took over 15 minutes"
    if result.returncode != 0:
        return f"chromium cannot be installed: {(result.stderr or result.stdout).strip()[-500:]}"
    return None


def start_chrome(user_data_dir: Path):
    from selenium import webdriver  # noqa: PLC0415  (only where the browser tests run)
    from selenium.webdriver.chrome.service import Service  # noqa: PLC0415

    options = webdriver.ChromeOptions()
    options.binary_location = shutil.which("chromium")
    for flag in (*FLAGS, f"--user-data-dir={user_data_dir}"):
        options.add_argument(flag)
    return webdriver.Chrome(service=Service(executable_path=shutil.which("chromedriver")), options=options)
