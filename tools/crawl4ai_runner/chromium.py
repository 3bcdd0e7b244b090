"""The system Chromium for browser mode: started headless with a temporary profile, attached to over CDP."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import aiohttp

__all__ = ["CHROMIUM_FLAGS", "Chromium"]

CHROMIUM_FLAGS = (
    "--headless=new",
    "--no-sandbox",  # containers run without the user namespaces Chromium's sandbox needs
    "--disable-gpu",
    "--disable-dev-shm-usage",  # Docker's default /dev/shm (64 MB) is too small for renderers
    "--disable-background-networking",  # no update checks, safe-browsing or metrics calls (nothing is reachable)
    "--disable-component-update",
    "--disable-default-apps",
    "--disable-extensions",
    "--disable-sync",
    "--no-first-run",
    "--no-default-browser-check",
    "--mute-audio",
    "--force-webrtc-ip-handling-policy=disable_non_proxied_udp",  # WebRTC's UDP would bypass the egress proxy
    "--hide-scrollbars",
    "--remote-debugging-address=127.0.0.1",
    "--remote-debugging-port=0",  # Chromium picks a free port and writes it to DevToolsActivePort: no race
)


def _die_with_parent() -> None:
    """In the child: have the kernel SIGKILL the browser if the runner dies, even by SIGKILL (no orphan)."""
    import ctypes

    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # 1 = PR_SET_PDEATHSIG


class Chromium:
    """The system Chromium, started headless with a temporary profile; crawl4ai attaches to it over CDP."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.proc: subprocess.Popen[bytes] | None = None
        self.profile: Path | None = None
        self.cdp_url: str | None = None
        self.version: str | None = None

    def _launch(self) -> subprocess.Popen[bytes]:
        """Spawn the browser with a fresh temporary profile (returns at once)."""
        if not (os.path.isfile(self.path) and os.access(self.path, os.X_OK)):
            raise RuntimeError(f"Chromium not found at {self.path} (set CHROMIUM_PATH or USE_SIMPLE_CRAWLER=true)")
        self.profile = Path(tempfile.mkdtemp(prefix="crawl4ai-chromium-"))
        cmd = [self.path, *CHROMIUM_FLAGS, f"--user-data-dir={self.profile}", "about:blank"]
        # Own process group, so stop() can end the renderers and zygotes with the browser.
        return subprocess.Popen(
            cmd,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
            # preexec_fn is unsafe with threads; Chromium starts during app setup, before any executor thread.
            preexec_fn=_die_with_parent if sys.platform == "linux" else None,
        )

    async def start(self, timeout_s: float = 30.0) -> str:
        """Launch Chromium and return its CDP URL once DevTools answers."""
        self.proc = self._launch()
        assert self.profile is not None
        port_file = self.profile / "DevToolsActivePort"
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"Chromium exited at start with status {self.proc.returncode}")
            if port_file.is_file() and (lines := port_file.read_text().split()):
                self.cdp_url = f"http://127.0.0.1:{lines[0]}"
                self.version = await self._version()
                if self.version is not None:
                    return self.cdp_url
            await asyncio.sleep(0.1)
        raise RuntimeError(f"Chromium did not open its DevTools port within {timeout_s:g} s")

    async def _version(self) -> str | None:
        try:
            timeout = aiohttp.ClientTimeout(total=2)
            async with aiohttp.ClientSession(timeout=timeout) as s, s.get(f"{self.cdp_url}/json/version") as resp:
                return str((await resp.json()).get("Browser"))
        except (aiohttp.ClientError, TimeoutError, ValueError):
            return None

    def alive(self) -> bool:
        """Whether the browser process still runs."""
        return self.proc is not None and self.proc.poll() is None

    def stop(self) -> None:
        """Terminate the browser's process group and delete the profile."""
        if self.proc is not None and self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=5)
        if self.profile is not None:
            shutil.rmtree(self.profile, ignore_errors=True)
            self.profile = None
