"""``hpa serve``'s API in process (httpx through FastAPI's TestClient and an ASGI transport).

The served results equal ``hpa predict``'s; every limit of a server that may be
exposed (token, body size, pixels, batch size, slow clients, what is accepted)
is met with a 4xx and the command line's message.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import shutil
import tempfile
import time
from pathlib import Path

import httpx
import numpy as np
import pandas as pd
import pytest
import tifffile
from conftest import hpa
from fastapi.testclient import TestClient
from helpers import KAGGLE_LAYOUT
from serve_support import (
    channel_files,
    huge_header_png,
    make_serve_run,
    multipart,
    png_bytes,
    random_channels,
    real_sample_ids,
)

from hpa_classify.classes import CHANNELS, CLASS_NAMES, NUM_CLASSES
from hpa_classify.data.io import read_channel
from hpa_classify.data.layout import load_dataset
from hpa_classify.errors import DataError, HPAError
from hpa_classify.evaluate.thresholds import load_thresholds
from hpa_classify.inference.runs import open_run
from hpa_classify.workflows.serve import Limits, ServeSettings, check_bind, create_app, load_served_model
from hpa_classify.workflows.serve import settings as serve_settings
from hpa_classify.workflows.serve.batching import MicroBatcher
from hpa_classify.workflows.serve.settings import Busy
from hpa_classify.workflows.submission import predict_run

TOKEN = "test-token-0123456789abcdef"


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """``(run_dir, data_root)`` of the tiny run."""
    return make_serve_run(tmp_path_factory.mktemp("serve-api"))


@pytest.fixture(scope="module")
def model(served: tuple[Path, Path]):
    return load_served_model(open_run(served[0]), device="cpu")


def client_for(model, **settings) -> TestClient:
    return TestClient(create_app(model, ServeSettings(**settings)))


@pytest.fixture(scope="module")
def client(model):
    with client_for(model) as c:
        yield c


def upload(files: dict[str, bytes]) -> dict[str, tuple[str, bytes]]:
    return {name: (f"{name}.png", data) for name, data in files.items()}


# ----------------------------------------------------------------------------- what it answers


def test_health_model_page_and_docs(client: TestClient, served: tuple[Path, Path]) -> None:
    assert client.get("/healthz").json() == {"status": "ok"}
    info = client.get("/v1/model").json()
    assert info["run"] == served[0].name and info["model"] == "test_efficientnet"
    assert info["input"] == {"size": 32, "channels": list(CHANNELS), "tta": 2}
    assert [c["name"] for c in info["classes"]] == list(CLASS_NAMES)
    saved = load_thresholds(served[0] / "thresholds.json")
    assert np.allclose([c["threshold"] for c in info["classes"]], saved)
    assert {"python", "hpa-classify", "torch", "fastapi", "uvicorn"} <= set(info["versions"])
    assert info["uploads"]["multichannel_file"] is False and info["token_required"] is False
    page = client.get("/")
    assert page.status_code == 200 and "Protein localisation" in page.text
    assert "default-src 'none'" in page.headers["content-security-policy"]
    assert page.headers["x-content-type-options"] == "nosniff"
    assert client.get("/page.js").headers["content-type"].startswith("text/javascript")
    docs = client.get("/docs").text
    assert "swagger-ui-bundle.js" in docs and "cdn." not in docs  # works without the internet
    schema = client.get("/openapi.json").json()
    form = schema["paths"]["/v1/predict"]["post"]["requestBody"]["content"]["multipart/form-data"]
    assert set(CHANNELS) <= set(form["schema"]["properties"])
    assert "/v1/predict/batch" in schema["paths"]


def test_results_equal_hpa_predict(client: TestClient, model, served: tuple[Path, Path], tmp_path: Path) -> None:
    """Same probabilities and the same labels (>= threshold, top-1 fallback) as ``hpa predict``."""
    run_dir, root = served
    data = load_dataset(root)
    predict_run(open_run(run_dir), data, tmp_path / "sub.csv", batch_size=7)
    submission = pd.read_csv(tmp_path / "sub.csv", keep_default_na=False)
    probs = pd.read_csv(tmp_path / "sub_probs.csv").iloc[:, 1:].to_numpy()
    fields = {f"{i}_{c}": (f"{i}_{c}.png", data.files[k][c].read_bytes())
              for k, i in enumerate(data.ids) for c in CHANNELS}
    response = client.post("/v1/predict/batch", files=fields)
    assert response.status_code == 200, response.text
    results = response.json()["results"]
    assert [r["id"] for r in results] == data.ids
    assert [r["target"] for r in results] == submission["Predicted"].tolist()
    served_probs = np.array([[c["probability"] for c in r["classes"]] for r in results])
    assert np.allclose(served_probs, probs, atol=1e-5)
    single = client.post("/v1/predict", files=upload({c: data.files[3][c].read_bytes() for c in CHANNELS}))
    assert single.json()["target"] == submission["Predicted"][3]
    assert np.allclose([c["probability"] for c in single.json()["classes"]], probs[3], atol=1e-5)


def test_kfold_run_serves_the_mean_of_its_folds(served: tuple[Path, Path], tmp_path: Path) -> None:
    """A K-fold run (here two copies of the tiny run as its folds) is served as hpa predict predicts it."""
    run_dir, root = served
    kfold = tmp_path / "kf"
    for i in range(2):
        shutil.copytree(run_dir, kfold / f"fold{i}")
    for name in ("config.yaml", "thresholds.json"):
        shutil.copy(run_dir / name, kfold / name)
    (kfold / "kfold.json").write_text(json.dumps({"folds": 2, "seed": 1}))
    data = load_dataset(root)
    predict_run(open_run(kfold), data, tmp_path / "sub.csv")
    submission = pd.read_csv(tmp_path / "sub.csv", keep_default_na=False)
    kfold_model = load_served_model(open_run(kfold), device="cpu")
    assert kfold_model.info()["n_models"] == 2
    with client_for(kfold_model) as c:
        fields = {f"{i}_{ch}": ("x.png", data.files[k][ch].read_bytes())
                  for k, i in enumerate(data.ids[:6]) for ch in CHANNELS}
        results = c.post("/v1/predict/batch", files=fields).json()["results"]
    assert [r["target"] for r in results] == submission["Predicted"][:6].tolist()


def test_onnx_backend_serves_the_same_probabilities(served: tuple[Path, Path], client: TestClient) -> None:
    onnx_model = load_served_model(open_run(served[0]), backend="onnx", device="cpu")
    files = upload(random_channels(seed=9))
    with client_for(onnx_model) as c:
        a = c.post("/v1/predict", files=files).json()
    b = client.post("/v1/predict", files=files).json()
    assert c.app.state.service.info()["backend"] == "onnx"  # type: ignore[attr-defined]
    assert np.allclose([x["probability"] for x in a["classes"]], [x["probability"] for x in b["classes"]], atol=1e-4)


def test_decision_rule_and_fallback(model) -> None:
    saved = model.thresholds
    try:
        model.thresholds = np.full(NUM_CLASSES, 1.01)  # no class can reach it: the top-1 fallback
        with client_for(model) as c:
            r = c.post("/v1/predict", files=upload(random_channels(seed=4))).json()
        probs = [x["probability"] for x in r["classes"]]
        assert r["fallback"] and r["labels"] == [int(np.argmax(probs))]
        assert r["names"] == [CLASS_NAMES[r["labels"][0]]]
        odd = np.arange(NUM_CLASSES) % 2 == 1
        model.thresholds = np.array(probs) + np.where(odd, 1e-4, 0.0)  # even ids reach theirs exactly
        with client_for(model) as c:
            r = c.post("/v1/predict", files=upload(random_channels(seed=4))).json()
        assert r["labels"] == list(range(0, NUM_CLASSES, 2)) and not r["fallback"]
        assert all(x["predicted"] == (x["id"] % 2 == 0) for x in r["classes"])
    finally:
        model.thresholds = saved


def test_type_from_bytes_not_name_and_16_bit_tiff(client: TestClient, tmp_path: Path) -> None:
    planes = {c: np.random.default_rng(k).integers(0, 65536, (40, 40), dtype=np.uint16)
              for k, c in enumerate(CHANNELS)}
    tiffs = {}
    for c, plane in planes.items():
        tifffile.imwrite(tmp_path / f"{c}.tif", plane)
        tiffs[c] = (tmp_path / f"{c}.tif").read_bytes()
    as_8_bit = {c: png_bytes(read_channel(tmp_path / f"{c}.tif")) for c in CHANNELS}
    named_wrong = {c: ("picture.jpg", data) for c, data in tiffs.items()}  # TIFF bytes, JPEG name
    a = client.post("/v1/predict", files=named_wrong)
    b = client.post("/v1/predict", files=upload(as_8_bit))
    assert a.status_code == b.status_code == 200
    assert a.json()["classes"] == b.json()["classes"]
    text = client.post("/v1/predict", files={**upload(as_8_bit), "red": ("red.png", b"plain text")})
    assert text.status_code == 422 and text.json()["detail"] == "red: not a PNG, JPEG or TIFF file"


def test_composite_and_reserved_fields(client: TestClient) -> None:
    r = client.post("/v1/predict?composite=true", files=upload(random_channels((30, 50))))
    body = r.json()
    assert body["composite"].startswith("data:image/png;base64,") and body["image"] == {"width": 50, "height": 30}
    assert body["activation_maps"] is None and body["cells"] is None
    assert client.post("/v1/predict", files=upload(random_channels())).json()["composite"] is None


# ----------------------------------------------------------------------------- refusals


def cli_message(tmp_path: Path, data: bytes) -> str:
    """What ``hpa predict`` says of a channel file with these bytes, with ``red`` for its path."""
    path = tmp_path / "red.png"
    path.write_bytes(data)
    with pytest.raises(DataError) as info:
        read_channel(path)
    return str(info.value).replace(str(path), "red")


@pytest.mark.parametrize("kind", ["empty", "text", "truncated", "corrupt length"])
def test_bad_images_get_the_cli_message(client: TestClient, tmp_path: Path, kind: str) -> None:
    good = random_channels(seed=2)
    red = {"empty": b"", "text": b"GIF89a not really", "truncated": good["red"][:60],
           "corrupt length": good["red"][:8] + b"\xff\xff\xff\xf0" + good["red"][12:]}[kind]
    r = client.post("/v1/predict", files=upload({**good, "red": red}))
    assert r.status_code == 422
    assert r.json() == {"detail": cli_message(tmp_path, red)}


def test_form_mistakes(client: TestClient) -> None:
    good = random_channels(seed=1)
    cases = [
        ({k: v for k, v in good.items() if k != "blue"}, 422, "sample has no blue channel file"),
        ({**good, "../../etc/passwd": b"x"}, 422, "unexpected field '../../etc/passwd'"),
        ({**good, "green": random_channels((20, 20))["green"]}, 422, "sample: channels differ in size"),
        ({"image": good["red"]}, 415, "image: one multi-channel file is not read yet"),
    ]
    for files, status, message in cases:
        r = client.post("/v1/predict", files=upload(files))
        assert r.status_code == status and r.json()["detail"].startswith(message), (message, r.text)
    body, ctype = multipart([*good.items(), ("red", good["red"])])
    twice = client.post("/v1/predict", content=body, headers={"Content-Type": ctype})
    assert twice.status_code == 422 and twice.json()["detail"] == "red: given twice"
    not_form = client.post("/v1/predict", json={"red": "x"})
    assert not_form.status_code == 415 and "multipart/form-data" in not_form.json()["detail"]
    bad_query = client.post("/v1/predict?composite=perhaps", files=upload(good))
    assert bad_query.status_code == 422 and "composite" in bad_query.json()["detail"]
    batch = client.post("/v1/predict/batch", files={"a/b_red": ("x", good["red"])})
    assert batch.status_code == 422 and "expected <name>_<channel>" in batch.json()["detail"]


def test_size_and_pixel_limits(model) -> None:
    good = random_channels(seed=3)
    limits = Limits(max_request_bytes=200_000, max_pixels=64 * 64, max_batch_images=2)
    with client_for(model, limits=limits) as c:
        header = c.post("/v1/predict", files=upload({**good, "blue": huge_header_png(100_000, 100_000)}))
        assert header.status_code == 422  # data.io's own check: a corrupt header, as the CLI says
        assert header.json()["detail"].startswith("blue: header gives 100000x100000 px, more than the")
        big = c.post("/v1/predict", files=upload(random_channels(80)))  # 80 x 80 > 64 x 64
        assert big.status_code == 413 and big.json()["detail"].startswith("red: header gives 80x80 px")
        body = {**good, "red": np.random.default_rng(0).bytes(300_000)}
        declared = c.post("/v1/predict", files=upload(body))
        assert declared.status_code == 413 and "larger than the" in declared.json()["detail"]
        chunks = iter([b"x" * 150_000, b"x" * 150_000])  # no Content-Length: counted as it arrives
        streamed = c.post("/v1/predict", content=chunks, headers={"Content-Type": "multipart/form-data; boundary=b"})
        assert streamed.status_code == 413
        fields = {f"s{i}_{ch}": ("x.png", good[ch]) for i in range(3) for ch in CHANNELS}
        many = c.post("/v1/predict/batch", files=fields)
        assert many.status_code == 413 and "at most" in many.json()["detail"]


def test_token(model) -> None:
    good = upload(random_channels(seed=5))
    with client_for(model, token=TOKEN) as c:
        assert c.get("/healthz").status_code == 200 and c.get("/").status_code == 200
        for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": f"Basic {TOKEN}"}):
            r = c.post("/v1/predict", files=good, headers=headers)
            assert r.status_code == 401 and r.headers["www-authenticate"] == "Bearer"
            assert "bearer token" in r.json()["detail"]
            assert c.get("/v1/model", headers=headers).status_code == 401
        ok = {"Authorization": f"Bearer {TOKEN}"}
        assert c.post("/v1/predict", files=good, headers=ok).status_code == 200
        assert c.get("/v1/model", headers=ok).json()["token_required"] is True


def test_token_is_compared_in_constant_time(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[tuple[int, int]] = []
    compare = hmac.compare_digest

    def spy(a: bytes, b: bytes) -> bool:
        seen.append((len(a), len(b)))
        return compare(a, b)

    monkeypatch.setattr(serve_settings.hmac, "compare_digest", spy)
    for given in ("x", "wrong-but-long-token-0000000000000", TOKEN):
        try:
            serve_settings.check_token(f"Bearer {given}", TOKEN)
        except HPAError:
            pass
    assert seen == [(32, 32)] * 3  # digests of equal length, whatever was given


def test_bind_needs_a_token_beyond_loopback() -> None:
    for host in ("127.0.0.1", "localhost", "::1"):
        check_bind(host, None)
    for host in ("0.0.0.0", "::", "192.0.2.7", "example.org"):
        with pytest.raises(HPAError, match="pass --token"):
            check_bind(host, None)
        check_bind(host, TOKEN)
    with pytest.raises(HPAError, match="at least 16 characters"):
        check_bind("0.0.0.0", "short")


def test_cli_refuses_an_open_host_without_a_token(served: tuple[Path, Path]) -> None:
    started = time.perf_counter()
    result = hpa("serve", served[0], "--host", "0.0.0.0", "--port", "1")
    assert result.returncode == 2 and "pass --token" in result.stderr
    assert time.perf_counter() - started < 30  # refused before the model loads
    short = hpa("serve", served[0], "--host", "0.0.0.0", "--token", "short")
    assert short.returncode == 2 and "at least 16 characters" in short.stderr


def test_nothing_written_to_disk(model, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Uploads larger than a framework's spooling threshold stay in memory; nothing is made in TMPDIR."""
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    rng = np.random.default_rng(0)
    big = {c: png_bytes(rng.integers(0, 256, (1100, 1100), dtype=np.uint8)) for c in CHANNELS}  # > 1 MiB each
    with client_for(model) as c:
        r = c.post("/v1/predict", files={k: ("../../../x.png", v) for k, v in big.items()})
    assert r.status_code == 200 and r.json()["image"]["width"] == 1100
    assert list(tmp_path.iterdir()) == []


# ----------------------------------------------------------------------------- concurrency


def test_slow_client_does_not_hold_the_model(model) -> None:
    """A client that stalls its upload gets 408 after the body timeout; others are served meanwhile."""
    good = random_channels(seed=6)
    body, ctype = multipart(list(good.items()))
    app = create_app(model, ServeSettings(limits=Limits(body_timeout_s=1.5)))

    async def stalled():
        yield body[:100]
        await asyncio.sleep(30)
        yield body[100:]

    async def scenario() -> tuple[int, float, int]:
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://test") as c:
                slow = asyncio.create_task(c.post("/v1/predict", content=stalled(), headers={"Content-Type": ctype}))
                await asyncio.sleep(0.2)
                started = time.perf_counter()
                fast = await c.post("/v1/predict", content=body, headers={"Content-Type": ctype})
                took = time.perf_counter() - started
                assert not slow.done()
                return fast.status_code, took, (await asyncio.wait_for(slow, 10)).status_code

    fast_status, took, slow_status = asyncio.run(scenario())
    assert fast_status == 200 and took < 1.4
    assert slow_status == 408


def test_batcher_batches_concurrent_requests() -> None:
    calls: list[int] = []

    def predict(x: np.ndarray) -> np.ndarray:
        calls.append(len(x))
        time.sleep(0.02)
        return x.reshape(len(x), -1)[:, :1].astype(np.float32)

    async def scenario() -> list[float]:
        batcher = MicroBatcher(predict, max_batch=8, max_wait_s=0.05, max_waiting=64)
        await batcher.start()
        try:
            images = [np.full((1, 1, 2, 2), i, np.uint8) for i in range(20)]
            out = await asyncio.gather(*(batcher.submit(x) for x in images))
            with pytest.raises(Busy):
                await batcher.submit(np.zeros((65, 1, 2, 2), np.uint8))
            return [float(o[0, 0]) for o in out]
        finally:
            await batcher.stop()

    assert asyncio.run(scenario()) == list(range(20))  # each request gets its own result
    assert sum(calls) == 20 and max(calls) == 8 and len(calls) <= 4


def test_internal_fault_is_json_500(model, monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(images: np.ndarray) -> np.ndarray:
        raise RuntimeError("out of memory")

    monkeypatch.setattr(model, "predict", broken)
    app = create_app(model, ServeSettings())
    with TestClient(app, raise_server_exceptions=False) as c:
        r = c.post("/v1/predict", files=upload(random_channels(seed=8)))
        assert r.status_code == 500 and r.json() == {
            "detail": "internal error (RuntimeError); the server's log has the details"}
        assert c.get("/healthz").status_code == 200  # the batcher goes on


def test_busy_server_answers_503(model) -> None:
    good = random_channels(seed=7)
    with client_for(model, limits=Limits(max_waiting_images=1)) as c:
        fields = {f"s{i}_{ch}": ("x.png", good[ch]) for i in range(2) for ch in CHANNELS}
        r = c.post("/v1/predict/batch", files=fields)
    assert r.status_code == 503 and "waiting for the model" in r.json()["detail"]


def test_real_sample(client: TestClient) -> None:
    ids = real_sample_ids()
    if not ids:
        pytest.skip(f"real HPA samples not found at {KAGGLE_LAYOUT}")
    r = client.post("/v1/predict", files=upload(channel_files(KAGGLE_LAYOUT, ids[0])))
    assert r.status_code == 200 and r.json()["image"] == {"width": 512, "height": 512}
