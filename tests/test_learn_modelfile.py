"""Model files (.hqm): round trip, and every refusal of a foreign, unsafe or unfit file."""

from __future__ import annotations

import hashlib
import json
import os
import zipfile

import numpy as np
import pytest

pytest.importorskip("sklearn")
pytest.importorskip("skops")

from sklearn.ensemble import RandomForestClassifier

from histoquant.errors import HistoquantError, ModelFileError
from histoquant.learn import LoadedModel, image_record, load_model, save_model


@pytest.fixture(scope="module")
def forest():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(60, 3))
    y = np.where(X[:, 0] > 0, "cell", "debris")
    return RandomForestClassifier(n_estimators=5, random_state=0).fit(X, y), X


def _manifest(**extra):
    return {"features": ["area_um2", "mean_intensity", "eccentricity"], "pixel_size_um": 0.5,
            "scores": {"accuracy": 0.9}, **extra}


def _members(path):
    with zipfile.ZipFile(path) as zf:
        return {info.filename: zf.read(info.filename) for info in zf.infolist()}


def _rewrite(path, members):
    with zipfile.ZipFile(path, "w") as zf:
        for name, data in members.items():
            zf.writestr(name, data)


def test_round_trip_predicts_the_same_and_describes_itself(tmp_path, forest):
    model, X = forest
    img = tmp_path / "a.tif"
    img.write_bytes(b"not really an image")
    out = save_model(tmp_path / "m.hqm", model, kind="objects",
                     manifest=_manifest(training_images=[image_record(img)]))
    assert out == tmp_path / "m.hqm"
    loaded = load_model(out, kind="objects")
    assert isinstance(loaded, LoadedModel) and loaded.kind == "objects"
    np.testing.assert_array_equal(loaded.estimator.predict(X), model.predict(X))
    np.testing.assert_allclose(loaded.estimator.predict_proba(X), model.predict_proba(X))
    m = loaded.manifest
    assert m["format"] == "histoquant-model" and m["format_version"] == 1
    assert m["classes"] == ["cell", "debris"] and loaded.classes == ["cell", "debris"]
    assert loaded.features == ["area_um2", "mean_intensity", "eccentricity"]
    assert loaded.pixel_size_um == 0.5
    assert set(m["versions"]) == {"histoquant", "scikit-learn", "skops", "numpy"}
    assert m["training_images"] == [{"name": "a.tif", "sha256": hashlib.sha256(
        b"not really an image").hexdigest()}]
    assert m["scores"] == {"accuracy": 0.9} and m["created"]
    payload = _members(out)["model.skops"]
    assert m["payload_sha256"] == hashlib.sha256(payload).hexdigest()
    assert load_model(out).kind == "objects"  # any kind accepted when none is asked


def test_wrong_kind_is_refused(tmp_path, forest):
    path = save_model(tmp_path / "m.hqm", forest[0], kind="objects", manifest=_manifest())
    with pytest.raises(ModelFileError, match="'objects' model; a 'pixels' model is needed"):
        load_model(path, kind="pixels")
    with pytest.raises(ModelFileError, match="kind must be one of"):
        save_model(tmp_path / "n.hqm", forest[0], kind="cells", manifest=_manifest())


def test_save_refuses_reserved_and_missing_keys(tmp_path, forest):
    with pytest.raises(ModelFileError, match="written by save_model"):
        save_model(tmp_path / "m.hqm", forest[0], kind="objects",
                   manifest=_manifest(format_version=7))
    with pytest.raises(ModelFileError, match="needs"):
        save_model(tmp_path / "m.hqm", forest[0], kind="objects", manifest={"features": []})


def test_not_a_zip_and_foreign_zip_and_missing_file(tmp_path):
    text = tmp_path / "notes.hqm"
    text.write_text("hello")
    with pytest.raises(ModelFileError, match="not a histoquant model file"):
        load_model(text)
    foreign = tmp_path / "foreign.hqm"
    _rewrite(foreign, {"word/document.xml": b"<xml/>"})
    with pytest.raises(ModelFileError, match="not a histoquant model"):
        load_model(foreign)
    other = tmp_path / "other.hqm"
    _rewrite(other, {"manifest.json": json.dumps({"format": "something-else"})})
    with pytest.raises(ModelFileError, match="not a histoquant model"):
        load_model(other)
    with pytest.raises(ModelFileError, match="no such model file"):
        load_model(tmp_path / "absent.hqm")
    assert issubclass(ModelFileError, HistoquantError)


def test_newer_format_version_is_refused(tmp_path, forest):
    path = save_model(tmp_path / "m.hqm", forest[0], kind="objects", manifest=_manifest())
    members = _members(path)
    manifest = json.loads(members["manifest.json"])
    manifest["format_version"] = 2
    members["manifest.json"] = json.dumps(manifest).encode()
    _rewrite(path, members)
    with pytest.raises(ModelFileError, match="format version 2 is newer"):
        load_model(path)


def test_tampered_payload_byte_is_refused(tmp_path, forest):
    path = save_model(tmp_path / "m.hqm", forest[0], kind="objects", manifest=_manifest())
    members = _members(path)
    payload = bytearray(members["model.skops"])
    payload[len(payload) // 2] ^= 0x01
    members["model.skops"] = bytes(payload)
    _rewrite(path, members)  # a valid zip (fresh CRCs): only the manifest's hash can tell
    with pytest.raises(ModelFileError, match="does not match the hash"):
        load_model(path)


def test_a_flipped_byte_anywhere_in_the_file_is_refused(tmp_path, forest):
    path = save_model(tmp_path / "m.hqm", forest[0], kind="objects", manifest=_manifest())
    raw = bytearray(path.read_bytes())
    for offset in (len(raw) // 3, len(raw) // 2, 2 * len(raw) // 3):
        bad = bytearray(raw)
        bad[offset] ^= 0xFF
        path.write_bytes(bytes(bad))
        with pytest.raises(ModelFileError):
            load_model(path)


def test_path_traversal_member_is_refused(tmp_path, forest):
    path = save_model(tmp_path / "m.hqm", forest[0], kind="objects", manifest=_manifest())
    members = _members(path)
    members["../../evil.sh"] = b"rm -rf ~"
    _rewrite(path, members)
    with pytest.raises(ModelFileError, match="path traversal"):
        load_model(path)
    members.pop("../../evil.sh")
    members["extra.bin"] = b"x"
    _rewrite(path, members)
    with pytest.raises(ModelFileError, match="unexpected member"):
        load_model(path)


def test_zip_bomb_member_is_refused(tmp_path, forest):
    path = save_model(tmp_path / "m.hqm", forest[0], kind="objects", manifest=_manifest())
    members = _members(path)
    # 32 MiB of spaces compress to a few tens of kB: the declared size gives it away
    members["manifest.json"] = members["manifest.json"] + b" " * (32 * 2**20)
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    assert path.stat().st_size < 2**20
    with pytest.raises(ModelFileError, match="zip bomb"):
        load_model(path)


def test_untrusted_types_are_refused_even_with_a_matching_hash(tmp_path, forest):
    import skops.io as sio
    from sklearn.preprocessing import FunctionTransformer

    evil = FunctionTransformer(func=os.system)
    with pytest.raises(ModelFileError, match="may not hold"):
        save_model(tmp_path / "e.hqm", evil, kind="objects", manifest=_manifest(classes=[]))
    # an attacker writes the file by hand and recomputes the hash
    path = save_model(tmp_path / "m.hqm", forest[0], kind="objects", manifest=_manifest())
    members = _members(path)
    payload = sio.dumps(evil)
    manifest = json.loads(members["manifest.json"])
    manifest["payload_sha256"] = hashlib.sha256(payload).hexdigest()
    _rewrite(path, {"manifest.json": json.dumps(manifest), "model.skops": payload})
    with pytest.raises(ModelFileError, match="does not trust"):
        load_model(path)


def test_other_scikit_learn_version_is_refused_unless_allowed(tmp_path, forest):
    path = save_model(tmp_path / "m.hqm", forest[0], kind="objects", manifest=_manifest())
    members = _members(path)
    manifest = json.loads(members["manifest.json"])
    manifest["versions"]["scikit-learn"] = "0.1.0"
    members["manifest.json"] = json.dumps(manifest).encode()
    _rewrite(path, members)
    with pytest.raises(ModelFileError, match="scikit-learn 0.1.0"):
        load_model(path)
    with pytest.warns(UserWarning, match="retrain"):
        loaded = load_model(path, allow_version_mismatch=True)
    np.testing.assert_array_equal(loaded.estimator.predict(forest[1]),
                                  forest[0].predict(forest[1]))
    # a patch-level difference loads silently
    import sklearn
    major, minor = sklearn.__version__.split(".")[:2]
    manifest["versions"]["scikit-learn"] = f"{major}.{minor}.999"
    members["manifest.json"] = json.dumps(manifest).encode()
    _rewrite(path, members)
    load_model(path)

