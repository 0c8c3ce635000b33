"""Inference, evaluation, sorting and ONNX export on a tiny run built without training."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from trainpilot.config import build_config
from trainpilot.engine.metrics import confusion_matrix, summarize
from trainpilot.inference import (UNCERTAIN, InferenceError, evaluate_split, load_trained, predict, preprocess,
                                  sort_into, write_predictions_csv)
from trainpilot.models import build_model

CLASSES = ["crack", "dent", "spot"]
SIZE = 32


def _make_run(root: Path, data_dir: Path, activation: str = "None", seed: int = 0) -> tuple[Path, torch.nn.Module]:
    cfg = build_config({"model_name": "mobilenetv3_small_050", "image_size": SIZE, "data_dir": str(data_dir),
                        "activation_function": activation})
    torch.manual_seed(seed)
    model, info = build_model(cfg, len(CLASSES))
    with torch.no_grad():  # spread the logits so that probabilities differ between images
        model.get_classifier().weight.mul_(20.0)
    model.eval()
    ckpt = {"format": 1, "session_id": root.name, "config": cfg.to_dict(), "class_names": CLASSES,
            "model_info": info, "model_note": "tiny test run", "image_size": SIZE, "epoch": 1,
            "model": model.state_dict(), "source": "raw", "monitor": "val_accuracy", "value": 0.5}
    (root / "checkpoints").mkdir(parents=True)
    torch.save(ckpt, root / "checkpoints" / "best.pt")
    return root, model


def _make_images(folder: Path, seed: int) -> None:
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(3):
        Image.fromarray(rng.integers(0, 255, (40, 36, 3), dtype=np.uint8)).save(folder / f"rgb{i}.png")


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    base = tmp_path_factory.mktemp("tiny")
    data = base / "data"
    for c, name in enumerate(CLASSES):
        _make_images(data / "test" / name, seed=c)
    rng = np.random.default_rng(9)
    Image.fromarray(rng.integers(0, 255, (30, 30), dtype=np.uint8), "L").save(data / "test" / "crack" / "gray.png")
    Image.fromarray(rng.integers(0, 255, (30, 30, 4), dtype=np.uint8), "RGBA").save(data / "test" / "dent" / "rgba.png")
    Image.fromarray(rng.integers(0, 255, (30, 30, 3), dtype=np.uint8)).convert("P").save(data / "test" / "spot" / "pal.png")
    (data / "test" / "spot" / "broken.jpg").write_bytes(rng.integers(0, 255, 300, dtype=np.uint8).tobytes())
    (data / "test" / "spot" / "notes.txt").write_text("not an image")
    run, model = _make_run(base / "runs" / "tiny_run", data)
    return {"base": base, "data": data, "run": run, "model": model, "trained": load_trained(run)}


def _images(data: Path) -> list[Path]:
    return sorted(p for p in (data / "test").rglob("*") if p.suffix in (".png", ".jpg"))


def test_load_from_run_dir_and_checkpoint(tiny):
    trained = tiny["trained"]
    assert trained.class_names == CLASSES and trained.image_size == SIZE
    assert not trained.model.training and trained.checkpoint.name == "best.pt"
    from_pt = load_trained(tiny["run"] / "checkpoints" / "best.pt")
    x = preprocess([p for p in _images(tiny["data"]) if p.suffix == ".png"], trained)
    assert x.shape == (12, 3, SIZE, SIZE) and x.dtype == torch.float32
    assert x.is_contiguous(memory_format=torch.channels_last)
    with torch.no_grad():
        expected = tiny["model"](x)
        assert torch.allclose(trained.model(x), expected, atol=1e-5)
        assert torch.allclose(from_pt.model(x), expected, atol=1e-5)


def test_swapped_activations_are_rebuilt(tmp_path, tiny):
    run, model = _make_run(tmp_path / "gelu_run", tiny["data"], activation="GELU", seed=1)
    trained = load_trained(run)
    assert any(isinstance(m, torch.nn.GELU) for m in trained.model.modules())
    x = preprocess([tiny["data"] / "test" / "crack" / "rgb0.png"], trained)
    with torch.no_grad():
        assert torch.allclose(trained.model(x), model(x), atol=1e-5)


def test_clear_errors_for_wrong_sources(tmp_path, tiny):
    with pytest.raises(InferenceError, match="not a trainpilot run directory"):
        load_trained(tmp_path)
    with pytest.raises(InferenceError, match="does not exist"):
        load_trained(tmp_path / "nope")
    with pytest.raises(InferenceError, match="load 'best' instead"):
        load_trained(tiny["run"], which="last")
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"\x00not a checkpoint")
    with pytest.raises(InferenceError, match="cannot read"):
        load_trained(junk)
    torch.save({"model": {}}, tmp_path / "other.pt")
    with pytest.raises(InferenceError, match="not a trainpilot checkpoint"):
        load_trained(tmp_path / "other.pt")
    with pytest.raises(InferenceError, match="broken.jpg"):
        preprocess([tiny["data"] / "test" / "spot" / "broken.jpg"], tiny["trained"])


def test_evaluate_matches_predict(tiny):
    res = evaluate_split(tiny["trained"], tiny["data"], "test", batch_size=4)
    assert res["num_images"] == 12  # 9 RGB + grayscale + RGBA + palette
    assert res["num_skipped"] == 2 and {Path(s["path"]).name for s in res["skipped"]} == {"broken.jpg", "notes.txt"}
    assert sum(map(sum, res["confusion_matrix"])) == 12
    preds = [p for p in predict(tiny["trained"], [tiny["data"] / "test"]) if "error" not in p]
    truth = torch.tensor([CLASSES.index(Path(p["path"]).parent.name) for p in preds])
    guess = torch.tensor([CLASSES.index(p["label"]) for p in preds])
    again = summarize(confusion_matrix(guess, truth, 3), CLASSES)
    for key in ("accuracy", "macro_f1", "precision", "recall", "confusion_matrix", "per_class"):
        assert res[key] == again[key]
    assert len(res["misclassified"]) == 12 - int(np.trace(np.array(res["confusion_matrix"])))


def test_evaluate_rejects_other_classes(tmp_path, tiny):
    for name in ("crack", "dent", "rust"):
        _make_images(tmp_path / "test" / name, seed=3)
    with pytest.raises(InferenceError, match=r"missing \['spot'\], extra \['rust'\]"):
        evaluate_split(tiny["trained"], tmp_path, "test")
    with pytest.raises(InferenceError, match="use one of: test"):
        evaluate_split(tiny["trained"], tmp_path, "val")
    with pytest.raises(InferenceError, match="split folders"):
        evaluate_split(tiny["trained"], tiny["data"], "all")


def test_predict_topk_and_unreadable_file(tiny):
    broken = tiny["data"] / "test" / "spot" / "broken.jpg"
    preds = predict(tiny["trained"], [tiny["data"] / "test" / "spot", broken], top_k=2)
    assert len(preds) == 5  # 3 rgb + palette + broken (listed once), notes.txt ignored
    bad = [p for p in preds if "error" in p]
    assert len(bad) == 1 and bad[0]["path"] == str(broken) and "cannot be decoded" in bad[0]["error"]
    for p in preds:
        if "error" not in p:
            probs = [t["prob"] for t in p["top"]]
            assert len(probs) == 2 and probs[0] >= probs[1] and sum(probs) <= 1 + 1e-6
            assert p["label"] == p["top"][0]["label"] and p["prob"] == probs[0]
    full = predict(tiny["trained"], [tiny["data"] / "test" / "crack"], top_k=10)
    assert all(len(p["top"]) == 3 and abs(sum(t["prob"] for t in p["top"]) - 1) < 1e-5 for p in full)
    with pytest.raises(InferenceError, match="does not exist"):
        predict(tiny["trained"], [tiny["data"] / "missing.png"])


def test_sort_into_threshold_and_no_overwrite(tmp_path, tiny):
    preds = predict(tiny["trained"], [tiny["data"] / "test"])
    probs = sorted(p["prob"] for p in preds if "error" not in p)
    threshold = probs[len(probs) // 2]
    dest = tmp_path / "sorted"
    low = [p for p in preds if "error" not in p and p["prob"] < threshold]
    (dest / UNCERTAIN).mkdir(parents=True)
    sentinel = dest / UNCERTAIN / Path(low[0]["path"]).name
    sentinel.write_bytes(b"keep me")
    counts = sort_into(preds, dest, threshold)
    assert counts["copied"] == 12 and counts["skipped"] == 1 and counts["uncertain"] == len(low) > 0
    assert sum(counts["per_folder"].values()) == 12
    assert sentinel.read_bytes() == b"keep me"
    for c in counts["copies"]:
        assert Path(c["dst"]).read_bytes() == Path(c["src"]).read_bytes()
        assert Path(c["dst"]).parent.name == c["folder"]
    again = sort_into(preds, dest, threshold)
    assert again["copied"] == 12
    assert len([p for p in dest.rglob("*") if p.is_file()]) == 25  # 12 + 12 + sentinel, nothing replaced
    with pytest.raises(InferenceError, match="between 0 and 1"):
        sort_into(preds, dest, 1.5)


def test_predictions_csv(tmp_path, tiny):
    preds = predict(tiny["trained"], [tiny["data"] / "test" / "spot"], top_k=2)
    path = write_predictions_csv(preds, tmp_path / "out" / "predictions.csv")
    with open(path, encoding="utf-8-sig", newline="") as f:
        rows = list(csv.reader(f))
    assert rows[0] == ["path", "top1", "prob1", "top2", "prob2", "error"]
    assert len(rows) == 1 + len(preds)
    broken = next(r for r in rows[1:] if r[0].endswith("broken.jpg"))
    assert broken[1] == "" and "cannot be decoded" in broken[-1]
    good = next(r for r in rows[1:] if r[0].endswith("rgb0.png"))
    assert good[1] in CLASSES and 0 < float(good[2]) <= 1 and good[-1] == ""


def test_export_onnx_verified(tmp_path, tiny):
    ort = pytest.importorskip("onnxruntime")
    from trainpilot.export import export_onnx, read_onnx_metadata

    res = export_onnx(tiny["trained"], tmp_path / "model.onnx")
    assert res["verified"] and res["top1_agreement"] == 1.0 and res["max_abs_diff"] < 1e-3
    assert res["opset"] == 17 and res["verified_on"] == "8 real images"
    meta = read_onnx_metadata(res["path"])
    assert meta["class_names"] == CLASSES and meta["image_size"] == SIZE
    assert meta["mean"] == pytest.approx(list(tiny["trained"].mean)) and meta["trainpilot_version"]
    session = ort.InferenceSession(res["path"], providers=["CPUExecutionProvider"])
    x = preprocess(_images(tiny["data"])[:3], tiny["trained"])
    logits = session.run(["logits"], {"input": x.contiguous().numpy()})[0]
    with torch.no_grad():
        assert np.allclose(logits, tiny["trained"].model(x).numpy(), atol=1e-4)


def test_export_raises_when_runtime_disagrees(tmp_path, tiny, monkeypatch):
    ort = pytest.importorskip("onnxruntime")
    from trainpilot.export import ExportError, export_onnx

    class Drifting(ort.InferenceSession):
        def run(self, names, feeds, *args):
            return [out + 0.5 for out in super().run(names, feeds, *args)]

    monkeypatch.setattr(ort, "InferenceSession", Drifting)
    with pytest.raises(ExportError, match="does not reproduce the PyTorch model"):
        export_onnx(tiny["trained"], tmp_path, sample_images=[tiny["data"] / "test" / "dent"])
    assert not any(tmp_path.iterdir())  # a failed export leaves nothing behind


def test_a_wide_input_goes_through_predict_and_export(tmp_path, tiny):
    """A run trained on a wide letterboxed input with turned tall images: inference and the ONNX file
    use the same input shape, and the metadata says how to make it."""
    pytest.importorskip("onnxruntime")
    from trainpilot.export import export_onnx, read_onnx_metadata

    cfg = build_config({"model_name": "mobilenetv3_small_050", "image_size": 64, "input_aspect": 2.0,
                        "resize_mode": "letterbox", "rotate_to_fit": True, "data_dir": str(tiny["data"])})
    torch.manual_seed(0)
    model, info = build_model(cfg, len(CLASSES))
    ckpt = {"format": 1, "session_id": "wide", "config": cfg.to_dict(), "class_names": CLASSES, "model_info": info,
            "model_note": "", "image_size": 64, "epoch": 1, "model": model.state_dict(), "source": "raw",
            "monitor": "val_accuracy", "value": 0.5}
    (tmp_path / "wide" / "checkpoints").mkdir(parents=True)
    torch.save(ckpt, tmp_path / "wide" / "checkpoints" / "best.pt")
    trained = load_trained(tmp_path / "wide")
    x = preprocess(_images(tiny["data"])[:3], trained)
    assert x.shape == (3, 3, 32, 64)  # 40x36 images are tall: turned, then letterboxed into 64 x 32
    assert len(predict(trained, _images(tiny["data"]))) == len(_images(tiny["data"]))
    res = export_onnx(trained, tmp_path / "wide.onnx")
    meta = read_onnx_metadata(res["path"])
    assert res["verified"] and (meta["input_height"], meta["input_width"]) == (32, 64)
    assert meta["rotate_to_fit"].startswith("true")


def test_a_logit_bias_in_best_pt_reaches_predict_evaluate_and_the_onnx_file(tmp_path, tiny):
    """best.pt's class-prior correction (trainpilot.priors) is part of the model everywhere it is used."""
    pytest.importorskip("onnxruntime")
    from trainpilot.export import export_onnx

    ckpt = torch.load(tiny["run"] / "checkpoints" / "best.pt", weights_only=True)
    x = preprocess([p for p in _images(tiny["data"]) if p.name != "broken.jpg"], tiny["trained"])
    with torch.no_grad():
        raw = tiny["trained"].model(x)
    bias = torch.tensor([0.0, 0.0, 50.0])  # large enough to make "spot" win everywhere
    (tmp_path / "adj" / "checkpoints").mkdir(parents=True)
    torch.save({**ckpt, "logit_bias": bias, "logit_adjustment": {"tau": 1.0}}, tmp_path / "adj" / "checkpoints" / "best.pt")
    trained = load_trained(tmp_path / "adj")
    assert trained.meta["logit_adjustment"] == {"tau": 1.0}
    with torch.no_grad():
        assert torch.allclose(trained.model(x), raw + bias, atol=1e-4)
    assert {p["label"] for p in predict(trained, _images(tiny["data"])) if "label" in p} == {"spot"}
    assert evaluate_split(trained, tiny["data"])["per_class"]["spot"]["recall"] == 1.0
    res = export_onnx(trained, tmp_path / "adj.onnx")
    assert res["verified"] and res["top1_agreement"] == 1.0
    torch.save({**ckpt, "logit_bias": torch.zeros(5)}, tmp_path / "adj" / "checkpoints" / "best.pt")
    with pytest.raises(InferenceError, match="logit_bias that does not match its 3 classes"):
        load_trained(tmp_path / "adj")


def test_flips_in_best_pt_reach_predict_and_the_onnx_file(tmp_path, tiny):
    """best.pt's test-time augmentation (trainpilot.tta) is part of the model everywhere it is used."""
    pytest.importorskip("onnxruntime")
    from trainpilot.export import export_onnx, read_onnx_metadata
    from trainpilot.tta import FlipAveraged

    ckpt = torch.load(tiny["run"] / "checkpoints" / "best.pt", weights_only=True)
    ckpt = {k: v for k, v in ckpt.items() if k not in ("tta", "logit_bias", "logit_adjustment")}
    (tmp_path / "one" / "checkpoints").mkdir(parents=True)
    torch.save(ckpt, tmp_path / "one" / "checkpoints" / "best.pt")
    (tmp_path / "flips" / "checkpoints").mkdir(parents=True)
    torch.save({**ckpt, "tta": {"used": True}}, tmp_path / "flips" / "checkpoints" / "best.pt")
    one, flips = load_trained(tmp_path / "one"), load_trained(tmp_path / "flips")
    assert not isinstance(one.model, FlipAveraged) and isinstance(flips.model, FlipAveraged)
    assert not isinstance(load_trained(tmp_path / "flips", flips=False).model, FlipAveraged)  # the suspect list's view
    x = preprocess([p for p in _images(tiny["data"]) if p.name != "broken.jpg"], one)
    with torch.no_grad():
        views = [one.model(v).softmax(1) for v in (x, x.flip(-1), x.flip(-2), x.flip(-1).flip(-2))]
        assert torch.allclose(flips.model(x).exp(), torch.stack(views).mean(0), atol=1e-5)
        assert not torch.allclose(views[0], views[1], atol=1e-3)  # the views differ, so the test can fail
    got = {p["path"]: p["label"] for p in predict(flips, _images(tiny["data"])) if "label" in p}
    mean = torch.stack(views).mean(0).argmax(1)
    assert list(got.values()) == [flips.class_names[i] for i in mean.tolist()]
    res = export_onnx(flips, tmp_path / "flips.onnx")
    assert res["verified"] and res["top1_agreement"] == 1.0
    assert read_onnx_metadata(tmp_path / "flips.onnx")["test_time_augmentation"].startswith("flips")
