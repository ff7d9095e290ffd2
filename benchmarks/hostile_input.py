"""Hostile or large input against a real ``rntk serve``: peak API memory, status, and the
latency of /healthz meanwhile (issue 17, item 3; the table in RELIABILITY.md).

Each case makes its input, starts a fresh API (``python -m rntk_launcher serve``, broker
mode with an unreachable broker, so that no embedded worker competes for the CPU), measures
/healthz idle for 1 s, then sends the input while a prober asks /healthz every 0.2 s on a
new connection each time. Peak memory is ``VmHWM`` (/proc/<pid>/status) of the API process
at the end (next to its value before the input was sent), and of its upload parse processes.

    python -m benchmarks.hostile_input                       # every case, about 4 minutes
    python -m benchmarks.hostile_input --cases csv zip       # some
    python -m benchmarks.hostile_input --source /tmp/old --scales 1   # another checkout

Sizes: scale 1 is what the issue's tester sent (a 100 MB CSV of ``ab`` lines, a 74.6 KB
zip that unpacks to 75 MB, ...); scales 10 and 100 multiply it where the limits let it be
sent (``RNTK_MAX_UPLOAD_MB`` is raised to 2048 for the 1 GB CSV). Prints one JSON object per
case and a Markdown table.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
import zipfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Callable

import httpx

REPO = Path(__file__).resolve().parents[1]
MB = 1 << 20


# ------------------------------------------------------------------------------- server


class Server:
    """A fresh ``rntk serve`` on a free port with its own data folder."""

    def __init__(self, source: Path, work: Path, env: dict[str, str]) -> None:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            self.port = sock.getsockname()[1]
        self.base = f"http://127.0.0.1:{self.port}"
        self.data = work / f"data-{self.port}"
        self.log = work / f"serve-{self.port}.log"
        clean = {key: value for key, value in os.environ.items() if not key.startswith("RNTK_")}
        clean.update({"RNTK_BROKER_URL": "redis://127.0.0.1:9/0", "RNTK_SWEEP_S": "3600",
                      "JAX_PLATFORMS": "cpu", "PYTHONUNBUFFERED": "1",
                      "RNTK_QUEUE": f"hostile-{uuid.uuid4().hex[:6]}", **env})
        with open(self.log, "wb") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "rntk_launcher", "serve", "--port", str(self.port),
                 "--data-dir", str(self.data), "--log-level", "warning"],
                cwd=source, env=clean, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(self.log.read_text()[-2000:])
            try:
                if httpx.get(self.base + "/healthz", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                time.sleep(0.2)
        raise TimeoutError("the server did not come up")

    def status(self, field: str) -> int:
        """A /proc/<pid>/status figure in bytes (VmHWM, VmRSS)."""
        for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
        return 0

    def children_peak(self) -> int:
        """The largest VmHWM among the server's descendants (its upload parse processes)."""
        parents: dict[int, int] = {}
        for entry in os.listdir("/proc"):
            try:
                parents[int(entry)] = int(Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, ValueError, IndexError):
                continue
        family, peak = {self.process.pid}, 0
        for _ in range(4):  # forkserver -> pool workers
            family |= {pid for pid, parent in parents.items() if parent in family}
        for pid in family - {self.process.pid}:
            try:
                peak = max(peak, next(int(line.split()[1]) * 1024 for line in
                                      Path(f"/proc/{pid}/status").read_text().splitlines() if line.startswith("VmHWM:")))
            except (OSError, StopIteration, ValueError):
                continue
        return peak

    def open_files(self) -> int:
        try:
            return len(os.listdir(f"/proc/{self.process.pid}/fd"))
        except OSError:
            return -1

    def uploads_left(self) -> int:
        tmp = self.data / "tmp"
        return len([p for p in tmp.iterdir() if p.name.startswith("upload-")]) if tmp.is_dir() else 0

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=5)


class Prober:
    """GET /healthz every ``period`` s on its own connection; latencies and failures."""

    def __init__(self, base: str, period: float = 0.2) -> None:
        self.base, self.period = base, period
        self.latencies: list[float] = []
        self.failures = 0
        self._stop = threading.Event()
        self._fds: list[int] = []
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            start = time.perf_counter()
            try:
                ok = httpx.get(self.base + "/healthz", timeout=30).status_code == 200
            except httpx.HTTPError:
                ok = False
            if ok:
                self.latencies.append(time.perf_counter() - start)
            else:
                self.failures += 1
            self._stop.wait(self.period)

    def __enter__(self) -> "Prober":
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=60)

    def summary(self) -> dict:
        ordered = sorted(self.latencies) or [float("nan")]
        return {"healthz_n": len(self.latencies), "healthz_failed": self.failures,
                "healthz_p50_ms": round(statistics.median(ordered) * 1000, 1),
                "healthz_max_ms": round(ordered[-1] * 1000, 1)}


# ------------------------------------------------------------------------------- inputs


def write_repeated(path: Path, head: bytes, line: bytes, size: int) -> Path:
    """``head`` then ``line`` repeated to about ``size`` bytes, written in 8 MB blocks."""
    block = line * max(1, (8 * MB) // len(line))
    with open(path, "wb") as handle:
        handle.write(head)
        written = len(head)
        while written < size:
            piece = block[: size - written] if size - written < len(block) else block
            handle.write(piece)
            written += len(piece)
    return path


def upload_file(base: str, path: Path, name: str | None = None, timeout: float = 600) -> httpx.Response:
    with open(path, "rb") as handle:
        return httpx.post(base + "/datasets", files={"file": (name or path.name, handle)}, timeout=timeout)


def declared_only(port: int, length: int, name: str, first: bytes = b"") -> str:
    """Send an upload's headers with Content-Length ``length`` (and ``first`` body bytes),
    without the rest; the status line the server answers with."""
    head = (f"--b\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{name}\"\r\n\r\n").encode()
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        sock.sendall((f"POST /datasets HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
                      f"Content-Type: multipart/form-data; boundary=b\r\nContent-Length: {length}\r\n\r\n").encode()
                     + head + first)
        answer = sock.recv(65536)
    return answer.split(b"\r\n", 1)[0].decode(errors="replace")


def zip_bomb(path: Path, unpacked: int) -> Path:
    """A UCI folder whose data file is ``unpacked`` bytes of blank lines (about 1000:1)."""
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as archive:
        archive.writestr("bomb/bomb.txt", "n_entradas= 1\nn_clases= 2\nn_arquivos= 1\nfich1= bomb_R.dat\nn_patrons1= 4\n")
        archive.writestr("bomb/conxuntos.dat", "0 1\n2 3\n")
        archive.writestr("bomb/conxuntos_kfold.dat", "0 1\n2 3\n" * 4)
        with archive.open("bomb/bomb_R.dat", "w", force_zip64=True) as member:
            member.write(b"\tf1\tclase\n")
            block = b"\n" * (8 * MB)
            for start in range(0, unpacked, len(block)):
                member.write(block[: unpacked - start])
    return path


def multipart_parts(path: Path, parts: int) -> Path:
    with open(path, "wb") as handle:
        for k in range(parts):
            handle.write(b"--b\r\nContent-Disposition: form-data; name=\"f%d\"\r\n\r\nx\r\n" % k)
        handle.write(b"--b--\r\n")
    return path


def post_body(base: str, path: Path, timeout: float = 300) -> int:
    with open(path, "rb") as handle:
        try:
            return httpx.post(base + "/datasets", content=handle.read(), timeout=timeout,
                              headers={"content-type": "multipart/form-data; boundary=b"}).status_code
        except httpx.HTTPError as exc:
            return f"closed ({type(exc).__name__})"  # type: ignore[return-value]


# -------------------------------------------------------------------------------- cases
# Each case: prepare(work, scale) makes the input before the server starts (so that making
# it does not count in the latencies), send(server, input, scale) sends it and says what
# came back.


def prepare_csv(work: Path, scale: int) -> Path | None:
    size = 100 * MB * scale
    return None if size > 2048 * MB else write_repeated(work / "ab.csv", b"", b"ab\n", size)


def send_csv(server: Server, path: Path | None, scale: int) -> dict:
    size = 100 * MB * scale
    if path is None:  # past any limit set here: answered from the headers alone
        return {"input": f"{size // MB:,} MB CSV of 'ab' lines (declared, not sent)",
                "status": declared_only(server.port, size, "ab.csv", b"ab\nab\n")}
    response = upload_file(server.base, path)
    return {"input": f"{size // MB:,} MB CSV of 'ab' lines", "status": response.status_code,
            "detail": response.json().get("detail", "")[:90]}


def prepare_rows(work: Path, scale: int) -> Path:
    return write_repeated(work / "rows.csv", b"x,label\n", b"0,1\n1,0\n", 100 * MB * scale)


def send_rows(server: Server, path: Path, scale: int) -> dict:
    response = upload_file(server.base, path)
    return {"input": f"{100 * scale:,} MB CSV of '0,1' rows", "status": response.status_code,
            "detail": response.json().get("detail", "")[:90]}


def prepare_zip(work: Path, scale: int) -> Path:
    return zip_bomb(work / "bomb.zip", 75 * MB * scale)


def send_zip(server: Server, path: Path, scale: int) -> dict:
    response = upload_file(server.base, path)
    return {"input": f"{path.stat().st_size / 1024:,.1f} KB zip unpacking to {75 * scale:,} MB",
            "status": response.status_code, "detail": response.json().get("detail", "")[:90]}


def prepare_ts(work: Path, scale: int) -> Path:
    values = 10**6 * scale
    path = work / "long.ts"
    with open(path, "wb") as handle:
        handle.write(b"@problemName long\n@univariate true\n@equalLength false\n@classLabel true a b\n@data\n")
        handle.writelines(b"1.0,2.0:a\n2.0,1.0:b\n" for _ in range(1000))
        block = b"0.5," * (MB // 4)
        for start in range(0, values - 1, MB // 4):
            handle.write(block[: 4 * min(MB // 4, values - 1 - start)])
        handle.write(b"0.5:a\n")
    return path


def send_ts(server: Server, path: Path, scale: int) -> dict:
    response = upload_file(server.base, path)
    return {"input": f".ts, one case of {10**6 * scale:,} values ({path.stat().st_size // MB:,} MB)",
            "status": response.status_code, "detail": response.json().get("detail", "")[:90]}


def prepare_parts(work: Path, scale: int) -> Path:
    return multipart_parts(work / "parts.bin", 10_000 * scale)


def send_parts(server: Server, path: Path, scale: int) -> dict:
    return {"input": f"{10_000 * scale:,} form parts ({path.stat().st_size / MB:,.1f} MB)",
            "status": post_body(server.base, path)}


def send_idle(server: Server, _: None, scale: int) -> dict:
    """``10,500 * scale`` connections: a third send nothing, a third stop mid-headers, a
    third stop mid-body; how many descriptors the server holds, then after the deadlines."""
    count = 10_500 * scale
    head = b"POST /datasets HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: multipart/form-data; boundary=b\r\n"
    body = (b"Content-Length: 100000\r\n\r\n--b\r\nContent-Disposition: form-data; name=\"file\"; "
            b"filename=\"a.csv\"\r\n\r\na,")
    sockets: list[socket.socket] = []
    peak_fds = server.open_files()
    try:
        for k in range(count):
            try:
                sock = socket.create_connection(("127.0.0.1", server.port), timeout=5)
                sock.setblocking(False)
                sock.send((b"", head, head + body)[k % 3])
            except OSError:
                continue
            sockets.append(sock)
            if k % 250 == 0:
                peak_fds = max(peak_fds, server.open_files())
        opened = time.monotonic()
        peak_fds = max(peak_fds, server.open_files())
        held = {}
        for wait in (12, 35):  # past the header deadline (10 s), past the body idle timeout (30 s)
            time.sleep(max(0.0, opened + wait - time.monotonic()))
            held[wait] = server.open_files()
    finally:
        for sock in sockets:
            sock.close()
    return {"input": f"{count:,} stalled connections (nothing / half the headers / half a body)",
            "status": f"server fds: peak {peak_fds}, {held[12]} after 12 s, {held[35]} after 35 s"}


def prepare_concurrent(work: Path, scale: int) -> Path:
    return write_repeated(work / "rows10.csv", b"x,y,label\n", b"0.5,1.5,1\n1.5,0.5,0\n", 10 * MB)


def send_concurrent(server: Server, path: Path, scale: int) -> dict:
    uploads = 20 * scale
    with ThreadPoolExecutor(max_workers=min(uploads, 64)) as pool:
        statuses = list(pool.map(lambda k: _status(upload_file, server.base, path, f"rows{k}.csv"), range(uploads)))
    counts = ", ".join(f"{statuses.count(s)} x {s}" for s in sorted(set(statuses), key=str))
    return {"input": f"{uploads} concurrent uploads of a 10 MB CSV (cap 4)", "status": counts}


def _status(upload: Callable[..., httpx.Response], *args: object) -> int | str:
    try:
        return upload(*args).status_code
    except httpx.HTTPError as exc:
        return type(exc).__name__


def _nothing(work: Path, scale: int) -> None:
    return None


#: name -> (prepare, send, {scale: extra RNTK_* settings})
CASES: dict[str, tuple[Callable, Callable, dict[int, dict[str, str]]]] = {
    "csv": (prepare_csv, send_csv, {1: {}, 10: {"RNTK_MAX_UPLOAD_MB": "2048"}, 100: {}}),
    "csv_rows": (prepare_rows, send_rows, {1: {}}),
    "zip": (prepare_zip, send_zip, {1: {}, 10: {}, 100: {}}),
    "ts": (prepare_ts, send_ts, {1: {}, 10: {}, 100: {}}),
    "parts": (prepare_parts, send_parts, {1: {}, 10: {}, 100: {}}),
    "idle": (_nothing, send_idle, {1: {}}),
    "concurrent": (prepare_concurrent, send_concurrent, {1: {}, 10: {}}),
}


def run_case(name: str, scale: int, source: Path, work: Path) -> dict:
    prepare, send, settings = CASES[name]
    made = prepare(work, scale)
    server = Server(source, work, settings[scale])
    try:
        before = server.status("VmHWM")
        with Prober(server.base) as idle:
            time.sleep(1.0)
        started = time.monotonic()
        with Prober(server.base) as prober:
            result = send(server, made, scale)
            time.sleep(0.5)
        result.update({"case": name, "scale": scale, "seconds": round(time.monotonic() - started, 1),
                       "rss_before_mb": round(before / MB), "rss_peak_mb": round(server.status("VmHWM") / MB),
                       "parse_rss_peak_mb": round(server.children_peak() / MB),
                       "idle_healthz_p50_ms": idle.summary()["healthz_p50_ms"],
                       **prober.summary(), "uploads_left": server.uploads_left(),
                       "log_kb": round(server.log.stat().st_size / 1024, 1)})
        return result
    finally:
        server.stop()
        shutil.rmtree(server.data, ignore_errors=True)
        if isinstance(made, Path):
            made.unlink(missing_ok=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cases", nargs="*", default=list(CASES), choices=list(CASES))
    parser.add_argument("--scales", nargs="*", type=int, default=[1, 10, 100])
    parser.add_argument("--source", type=Path, default=REPO, help="the checkout whose `rntk serve` runs")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="rntk-hostile-"))
    rows = []
    try:
        for name in args.cases:
            for scale in args.scales:
                if scale in CASES[name][2]:
                    row = run_case(name, scale, args.source, work)
                    print(json.dumps(row), flush=True)
                    rows.append(row)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print("\n| case | input | answer | peak API RSS (at start) | peak parse process RSS | "
          "/healthz meanwhile: p50 / max (failed); idle p50 | took | upload folders left |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    for row in rows:
        print(f"| {row['case']} x{row['scale']} | {row['input']} | {row['status']} | "
              f"{row['rss_peak_mb']:,} MB ({row['rss_before_mb']} MB) | {row['parse_rss_peak_mb']:,} MB | "
              f"{row['healthz_p50_ms']} / {row['healthz_max_ms']} ms ({row['healthz_failed']}); "
              f"{row['idle_healthz_p50_ms']} ms | {row['seconds']} s | {row['uploads_left']} |")


if __name__ == "__main__":
    main()
