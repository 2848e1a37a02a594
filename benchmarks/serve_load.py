"""Load test of ``hpa serve`` on loopback, against ``hpa predict``'s batch rate for the same model.

One command::

    python benchmarks/serve_load.py                       # 500 requests at concurrency 16
    python benchmarks/serve_load.py --run runs/demo --requests 200 --concurrency 8

Without ``--run`` it trains EfficientNet-Lite0 at ``--size`` px for one step on
a few synthetic images (the weights do not change the speed). Then, in order:

1. ``hpa predict``'s rate: :func:`hpa_classify.workflows.submission.predict_run`
   (what ``hpa predict`` calls after loading the data: PNG decoding and
   resizing, the model with the run's TTA, thresholds, the files) on the real
   samples of ``../shared/data/hpa_samples/kaggle_layout`` repeated to
   ``--predict-images`` images; median of ``--repeats`` rounds after a warm-up;
2. ``hpa serve RUN`` started as a user starts it, in its own process, on
   127.0.0.1 only;
3. ``--requests`` uploads of those samples' four PNG channels to
   ``POST /v1/predict``, ``--concurrency`` at a time, every ``--malformed-every``-th
   one malformed (not an image, a truncated PNG, a missing channel, a header of
   100,000 x 100,000 px), after a warm-up. Every good request must answer 200
   with the labels of that sample; every malformed one a 4xx.

Every loop is bounded in count and time (``--time-limit`` in all, ``--request-timeout``
per request); the server is stopped at the end. Nothing but loopback is contacted.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import torch

ROOT = Path(__file__).resolve().parents[1]
SAMPLES = ROOT.parent / "shared" / "data" / "hpa_samples" / "kaggle_layout"
CHANNELS = ("red", "green", "blue", "yellow")
MALFORMED_KINDS = ("not an image", "truncated PNG", "missing channel", "huge header")


# ----------------------------------------------------------------------------- request bodies


def multipart(fields: list[tuple[str, bytes]]) -> tuple[bytes, str]:
    """A ``multipart/form-data`` body and its Content-Type (built once, sent many times)."""
    boundary = uuid.uuid4().hex
    out = bytearray()
    for name, data in fields:
        out += (f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"; filename="{name}.png"\r\n'
                "Content-Type: application/octet-stream\r\n\r\n").encode()
        out += data + b"\r\n"
    out += f"--{boundary}--\r\n".encode()
    return bytes(out), f"multipart/form-data; boundary={boundary}"


def sample_files(folder: Path, limit: int = 8) -> dict[str, dict[str, bytes]]:
    """Up to ``limit`` samples of a Kaggle-layout folder: Id -> channel -> PNG bytes."""
    ids = sorted(p.name[: -len("_green.png")] for p in folder.glob("*_green.png"))[:limit]
    return {i: {c: (folder / f"{i}_{c}.png").read_bytes() for c in CHANNELS} for i in ids}


def malformed_body(kind: str, files: dict[str, bytes]) -> tuple[bytes, str]:
    """A request that must be refused with a 4xx: one of :data:`MALFORMED_KINDS`."""
    fields = dict(files)
    if kind == "not an image":
        fields["red"] = b"this is not an image\n" * 10
    elif kind == "truncated PNG":
        fields["green"] = fields["green"][: len(fields["green"]) // 2]
    elif kind == "missing channel":
        del fields["yellow"]
    elif kind == "huge header":
        png = bytearray(fields["blue"])
        png[16:24] = (100_000).to_bytes(4, "big") * 2
        fields["blue"] = bytes(png)
    else:
        raise ValueError(kind)
    return multipart(list(fields.items()))


# ----------------------------------------------------------------------------- the load


@dataclass
class Load:
    """What a load produced: latencies of the good requests and every outcome counted."""

    seconds: float = 0.0
    latencies: list[float] = field(default_factory=list)
    good_ok: int = 0
    good_failed: list[str] = field(default_factory=list)
    malformed_4xx: int = 0
    malformed_other: list[str] = field(default_factory=list)
    not_sent: int = 0

    @property
    def images_per_s(self) -> float:
        return self.good_ok / self.seconds if self.seconds else 0.0

    def percentile(self, q: float) -> float:
        if not self.latencies:
            return float("nan")
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(round(q / 100 * (len(ordered) - 1))))]


async def _one(client: httpx.AsyncClient, url: str, body: bytes, kind: str, headers: dict[str, str]) -> tuple[int, dict | None, float]:
    started = time.perf_counter()
    response = await client.post(url, content=body, headers=headers)
    elapsed = time.perf_counter() - started
    try:
        payload = response.json()
    except ValueError:
        payload = None
    return response.status_code, payload, elapsed


async def run_load(
    base: str,
    samples: dict[str, dict[str, bytes]],
    expected: dict[str, list[int]],
    requests: int,
    concurrency: int,
    malformed_every: int = 25,
    time_limit: float = 300.0,
    request_timeout: float = 60.0,
    token: str | None = None,
) -> Load:
    """Send ``requests`` uploads, ``concurrency`` at a time; stop sending at ``time_limit`` seconds."""
    good = {i: multipart(list(files.items())) for i, files in samples.items()}
    first = next(iter(samples.values()))
    bad = {k: malformed_body(k, first) for k in MALFORMED_KINDS}
    plan: list[tuple[str, str]] = []  # (sample Id or malformed kind, "good" | "bad")
    ids = list(samples)
    for n in range(requests):
        if malformed_every and n % malformed_every == malformed_every - 1:
            plan.append((MALFORMED_KINDS[(n // malformed_every) % len(MALFORMED_KINDS)], "bad"))
        else:
            plan.append((ids[n % len(ids)], "good"))
    load = Load()
    queue = iter(plan)
    deadline = time.perf_counter() + time_limit
    auth = {"Authorization": f"Bearer {token}"} if token else {}
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)

    async def worker(client: httpx.AsyncClient) -> None:
        for name, what in queue:
            if time.perf_counter() > deadline:
                load.not_sent += 1
                continue
            body, ctype = good[name] if what == "good" else bad[name]
            try:
                status, payload, elapsed = await _one(client, f"{base}/v1/predict", body, name, {**auth, "Content-Type": ctype})
            except httpx.HTTPError as exc:
                (load.good_failed if what == "good" else load.malformed_other).append(f"{name}: {type(exc).__name__}")
                continue
            if what == "bad":
                if 400 <= status < 500:
                    load.malformed_4xx += 1
                else:
                    load.malformed_other.append(f"{name}: {status}")
            elif status == 200 and payload is not None and payload["labels"] == expected[name]:
                load.good_ok += 1
                load.latencies.append(elapsed)
            else:
                load.good_failed.append(f"{name}: {status} {str(payload)[:200]}")

    async with httpx.AsyncClient(timeout=request_timeout, limits=limits) as client:
        started = time.perf_counter()
        await asyncio.gather(*(worker(client) for _ in range(concurrency)))
        load.seconds = time.perf_counter() - started
    return load


async def expected_labels(base: str, samples: dict[str, dict[str, bytes]], token: str | None = None) -> dict[str, list[int]]:
    """Each sample's labels from one request at a time (also the warm-up)."""
    auth = {"Authorization": f"Bearer {token}"} if token else {}
    out = {}
    async with httpx.AsyncClient(timeout=60) as client:
        for name, files in samples.items():
            body, ctype = multipart(list(files.items()))
            response = await client.post(f"{base}/v1/predict", content=body, headers={**auth, "Content-Type": ctype})
            response.raise_for_status()
            out[name] = response.json()["labels"]
    return out


# ----------------------------------------------------------------------------- the server


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(run: Path, port: int, *extra: str, log: Path | None = None, threads: int | None = None) -> subprocess.Popen:
    """``hpa serve RUN`` on 127.0.0.1:``port`` in its own process (as a user starts it).

    ``threads`` sets torch's thread count there (through ``OMP_NUM_THREADS``).
    """
    out = open(log, "wb") if log else subprocess.DEVNULL  # noqa: SIM115 - closed with the process
    env = dict(os.environ, COLUMNS="200", NO_COLOR="1")
    if threads:
        env["OMP_NUM_THREADS"] = str(threads)
    return subprocess.Popen(
        [sys.executable, "-m", "hpa_classify.cli", "serve", str(run), "--host", "127.0.0.1", "--port", str(port), *extra],
        stdout=out, stderr=subprocess.STDOUT, env=env,
    )


def wait_ready(base: str, process: subprocess.Popen, timeout: float = 180.0) -> float:
    """Seconds until ``GET /healthz`` answers 200; RuntimeError if the process exits or time runs out."""
    started = time.perf_counter()
    while time.perf_counter() - started < timeout:
        if process.poll() is not None:
            raise RuntimeError(f"hpa serve exited with status {process.returncode}")
        try:
            if httpx.get(f"{base}/healthz", timeout=2).status_code == 200:
                return time.perf_counter() - started
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"hpa serve did not answer within {timeout:.0f} s")


def stop_server(process: subprocess.Popen) -> None:
    """Ctrl-C, as a user stops it; killed if it does not stop within 20 s."""
    if process.poll() is None:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)


# ----------------------------------------------------------------------------- hpa predict


def make_run(work: Path, model: str, size: int, tta: int) -> Path:
    """A run of ``model`` at ``size`` px trained for one step on synthetic images."""
    from hpa_classify.config import load_config
    from hpa_classify.data.layout import load_dataset
    from hpa_classify.data.synth import generate
    from hpa_classify.train.single import train_run

    run_dir = work / f"run-{model}-{size}-tta{tta}"
    if (run_dir / "thresholds.json").is_file():
        return run_dir
    root = work / "synth"
    if not (root / "train.csv").is_file():
        generate(root, n_train=32, n_test=0, size=size, seed=0, min_per_class=0)
    cfg = load_config(None, [
        f"model.name={model}", "model.pretrained=none", f"data.size={size}", "data.batch_size=8",
        "data.num_workers=0", "train.epochs=1", "train.limit_train_batches=1", f"predict.tta={tta}",
        "evaluate.pr_figures=false", "train.accelerator=cpu",
    ])
    train_run(cfg, load_dataset(root), run_dir, force=True)
    return run_dir


def repeated_dataset(folder: Path, ids: list[str], n: int, work: Path) -> Path:
    """A Kaggle-layout folder of ``n`` images: links to ``ids``' files under new Ids."""
    root = work / f"repeated-{n}"
    images = root / "test"
    images.mkdir(parents=True, exist_ok=True)
    lines = ["Id"]
    for k in range(n):
        source, new = ids[k % len(ids)], f"img{k:05d}"
        lines.append(new)
        for c in CHANNELS:
            link = images / f"{new}_{c}.png"
            if not link.exists():
                link.symlink_to(folder / f"{source}_{c}.png")
    (root / "sample_submission.csv").write_text("\n".join(lines) + "\n")
    return root


def predict_rates(run_dir: Path, data_root: Path, workers: list[int], repeats: int, work: Path) -> dict[int, float]:
    """Images per second of ``predict_run`` (what ``hpa predict`` calls) with each ``data.num_workers``.

    Median of ``repeats`` rounds, the settings taking turns so that a busy machine slows all alike.
    """
    from hpa_classify.data.layout import load_dataset
    from hpa_classify.inference.runs import open_run
    from hpa_classify.workflows.submission import predict_run

    run, data = open_run(run_dir), load_dataset(data_root, prefer="test")
    rates: dict[int, list[float]] = {w: [] for w in workers}
    for _ in range(repeats):
        for w in workers:
            run.cfg.data.num_workers = w
            started = time.perf_counter()
            predict_run(run, data, work / "submission.csv")
            rates[w].append(len(data) / (time.perf_counter() - started))
    return {w: statistics.median(r) for w, r in rates.items()}


def served_batches(log: Path) -> str:
    """The server's closing line on its batches, from its log."""
    text = log.read_text(errors="replace") if log.is_file() else ""
    lines = [line for line in text.splitlines() if "batches (mean" in line]
    return lines[-1].strip() if lines else "(no batch summary in the log)"


# ----------------------------------------------------------------------------- main


def table(load: Load, requests: int, concurrency: int, predict: float | None) -> str:
    """The Markdown table of one load."""
    other = len(load.good_failed) + len(load.malformed_other) + load.not_sent
    predicted = f"{predict:.1f}" if predict else "-"
    ratio = f"{load.images_per_s / predict:.2f}" if predict else "-"
    return "\n".join([
        "| requests | concurrency | good: 200, right labels | malformed: 4xx | other outcomes "
        "| p50 latency | p95 latency | images/s | hpa predict images/s | ratio |",
        "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
        f"| {requests} | {concurrency} | {load.good_ok} | {load.malformed_4xx} | {other} "
        f"| {1000 * load.percentile(50):.0f} ms | {1000 * load.percentile(95):.0f} ms "
        f"| {load.images_per_s:.1f} | {predicted} | {ratio} |",
    ])


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--run", type=Path, help="run to serve (default: train a one-step run)")
    p.add_argument("--model", default="tf_efficientnet_lite0", help="timm model of the trained run")
    p.add_argument("--size", type=int, default=128, help="input side of the trained run, px (default 128)")
    p.add_argument("--tta", type=int, default=1, help="predict.tta of the trained run (default 1)")
    p.add_argument("--requests", type=int, default=500)
    p.add_argument("--concurrency", type=int, default=16)
    p.add_argument("--malformed-every", type=int, default=25, help="every N-th request is malformed (0: none)")
    p.add_argument("--predict-images", type=int, default=256, help="images of the hpa predict rounds")
    p.add_argument("--repeats", type=int, default=3, help="hpa predict rounds; the median is reported")
    p.add_argument("--predict-workers", default="0,2",
                   help="data.num_workers of the hpa predict rounds; the fastest is the reference (default 0,2)")
    p.add_argument("--time-limit", type=float, default=600.0, help="seconds the load may take in all")
    p.add_argument("--request-timeout", type=float, default=60.0)
    p.add_argument("--threads", type=int, help="torch threads of hpa predict and hpa serve (default: torch's, one per core)")
    p.add_argument("--samples", type=Path, default=SAMPLES, help="Kaggle-layout folder of PNG samples")
    p.add_argument("--work", type=Path, help="folder for the run and data (default: a temp folder)")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    warnings.filterwarnings("ignore")
    logging.getLogger("lightning").setLevel(logging.ERROR)
    if not args.samples.is_dir():
        print(f"no samples at {args.samples}", file=sys.stderr)
        return 2
    tmp = tempfile.TemporaryDirectory(prefix="hpa-serve-load-") if args.work is None else None
    work = Path(tmp.name) if tmp else args.work
    work.mkdir(parents=True, exist_ok=True)
    run_dir = args.run or make_run(work, args.model, args.size, args.tta)
    samples = sample_files(args.samples)
    print(f"hpa predict on {args.predict_images} images ...", file=sys.stderr)
    data_root = repeated_dataset(args.samples, list(samples), args.predict_images, work)
    workers = [int(w) for w in args.predict_workers.split(",")]
    rates = predict_rates(run_dir, data_root, workers, args.repeats, work)
    rate = max(rates.values())
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    load_before = os.getloadavg()[0]
    process = start_server(run_dir, port, log=work / "serve.log", threads=args.threads)
    try:
        ready = wait_ready(base, process)
        print(f"hpa serve ready in {ready:.1f} s; warming up ...", file=sys.stderr)
        expected = asyncio.run(expected_labels(base, samples))
        asyncio.run(run_load(base, samples, expected, 2 * args.concurrency, args.concurrency, 0, 120.0))
        load = asyncio.run(run_load(base, samples, expected, args.requests, args.concurrency,
                                    args.malformed_every, args.time_limit, args.request_timeout))
    finally:
        stop_server(process)
    load_after = os.getloadavg()[0]
    threads = f"torch threads {args.threads}" if args.threads else "torch's default threads"
    print(f"\nhpa serve under load: {os.cpu_count()} cores, {threads}, load average {load_before:.1f} before and "
          f"{load_after:.1f} after; run {run_dir.name}; {len(samples)} real 512 px samples (4 PNG channels each) "
          f"uploaded to POST /v1/predict from the same machine; hpa predict on {args.predict_images} of them, "
          f"median of {args.repeats} rounds\n")
    print(table(load, args.requests, args.concurrency, rate))
    shown = ", ".join(f"{rates[w]:.1f} with data.num_workers={w}" for w in workers)
    print(f"\nhpa predict images/s: {shown} (the ratio uses the fastest)")
    print(f"server: {served_batches(work / 'serve.log')}")
    for line in (load.good_failed + load.malformed_other)[:10]:
        print("  ", line)
    if tmp is not None:
        tmp.cleanup()
    ok = not load.good_failed and not load.malformed_other and not load.not_sent
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
