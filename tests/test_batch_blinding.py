"""Blinded study runs: no name, group or key in the results; codes stable; unblind = plain run.

A phantom study (2 groups × 2 animals × 2 levels, whole slides split into sections, PNGs and
OME-TIFFs, subfolders named after the animals) is run plainly and blinded. Every file under
the blinded output — text, the workbook's XML, the part store's zip members — is searched
for the animals, groups, file stems and the key's content; the QC captions, which are
pixels, are checked where they are drawn.
"""

from __future__ import annotations

import json
import logging
import re
import zipfile
from pathlib import Path

import pandas as pd
import pytest

from histoquant.synthetic.study import write_phantom_study
from histoquant.testing import BLOB_SPEC, register

GROUPS = ("vehicle", "MSC")


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    folder = tmp_path_factory.mktemp("study")
    truth = write_phantom_study(folder, groups=GROUPS, group_means=(20, 40),
                                animals_per_group=2, levels=("L3", "L4"), seed=3,
                                slide_every=2, png_every=3)
    # one file that cannot be read: its error message quotes its path
    (folder / "R02" / "R02_L5_s1.ome.tif").write_bytes(b"not a tiff at all")
    with open(folder / "samples.csv", "a") as f:
        f.write("R02/R02_L5_s1.ome.tif,R02,vehicle,L5,1,,\n")
    base = tmp_path_factory.mktemp("runs")
    captions: list[list[str]] = []
    logged: list[str] = []

    class Keep(logging.Handler):
        def emit(self, record):
            logged.append(self.format(record))

    keep = Keep(logging.WARNING)
    logging.getLogger().addHandler(keep)
    with pytest.MonkeyPatch.context() as mp:
        register(mp, BLOB_SPEC)
        import histoquant.qc as qc
        from histoquant.batch import run_batch
        from histoquant.batch.blinding import unblind

        draw = qc.add_caption

        def spy(rgb, lines):
            captions.append(list(lines))
            return draw(rgb, lines)

        mp.setattr(qc, "add_caption", spy)
        plain = run_batch(folder, base / "plain")
        n_plain, n_logged = len(captions), len(logged)
        blind = run_batch(folder, base / "blind", blind=True)
        blind_captions, blind_logged = captions[n_plain:], logged[n_logged:]
        key_before = (base / "blind.blinding-key.csv").read_text()
        resumed = run_batch(folder, base / "blind", blind=True, resume=True)
        un = unblind(base / "blind")
    logging.getLogger().removeHandler(keep)
    return {"logged": blind_logged, "plain_logged": logged[:n_logged], "folder": folder,
            "truth": truth, "base": base, "plain": plain, "blind": blind, "resumed": resumed,
            "unblind": un, "captions": blind_captions,
            "key_before": key_before}


def _texts(root: Path):
    """Every file under ``root`` as text; zip files (xlsx, parts) member by member."""
    for p in sorted(root.rglob("*")):
        if not p.is_file():
            continue
        data = p.read_bytes()
        if data[:4] == b"PK\x03\x04":
            with zipfile.ZipFile(p) as z:
                for n in z.namelist():
                    if not n.endswith(".png"):
                        yield f"{p}:{n}", z.read(n).decode("utf-8", "replace")
            yield str(p), p.name
        elif data[:8] == b"\x89PNG\r\n\x1a\n":
            yield str(p), p.name  # the pixels are checked through the captions
        else:
            yield str(p), p.relative_to(root).as_posix() + "\n" + data.decode("utf-8",
                                                                            "replace")


def _secrets(runs) -> list[str]:
    truth = runs["truth"]
    stems = {Path(f).name.split(".")[0] for f in truth["file"]}
    key = pd.read_csv(runs["base"] / "blind.blinding-key.csv", dtype=str)
    return sorted({*truth["animal"], *GROUPS, *stems, *key["run"], *key["sha256"]})


def test_blinded_outputs_hold_no_name_group_or_key(runs):
    out = runs["base"] / "blind"
    found = []
    for where, text in _texts(out):
        for s in _secrets(runs):
            if re.search(rf"(?<![A-Za-z0-9]){re.escape(s)}(?![A-Za-z0-9])", text,
                         re.IGNORECASE):
                found.append((where, s))
    assert not found, found[:10]
    # every key row's real values are absent, whichever way they are joined
    key = pd.read_csv(runs["base"] / "blind.blinding-key.csv", dtype=str)
    assert not (out / "blind.blinding-key.csv").exists()
    assert len(key) == runs["truth"]["file"].nunique() + 1  # the unreadable file too


def test_captions_show_codes_not_names(runs):
    caps = runs["captions"]
    assert caps
    key = pd.read_csv(runs["base"] / "blind.blinding-key.csv", dtype=str)
    for lines in caps:
        text = " ".join(lines)
        for s in _secrets(runs):
            assert not re.search(rf"(?<![A-Za-z0-9]){re.escape(s)}(?![A-Za-z0-9])", text,
                                 re.IGNORECASE), (s, text)
        assert any(c in text for c in key["image_code"])


def test_group_withheld_and_rows_sorted_by_code(runs):
    out = runs["base"] / "blind"
    sections = pd.read_csv(out / "sections.csv", dtype=str)
    animals = pd.read_csv(out / "tables" / "blobs__animals.csv", dtype=str)
    assert set(sections["group"]) == {"blinded"} and set(animals["group"]) == {"blinded"}
    key = pd.read_csv(runs["base"] / "blind.blinding-key.csv", dtype=str)
    errors = pd.read_csv(out / "errors.csv", dtype=str)
    assert set(sections["image"]) | set(errors["image"]) == set(key["image_code"])
    assert set(animals["animal"]) == set(key["animal_code"])
    from histoquant.batch.samples import natural_key

    assert list(animals["animal"]) == sorted(animals["animal"], key=natural_key)
    # codes are random: the animals' code order is not their name order in every run
    # (checked on the code format and on distinctness; randomness is the secrets module's)
    assert all(re.fullmatch(r"A[0-9A-Z]{5}", c) for c in key["animal_code"])
    assert all(re.fullmatch(r"S[0-9A-Z]{6}", c) for c in key["image_code"])
    assert key["image_code"].is_unique
    for prism in (out / "prism").glob("*.csv"):
        assert list(pd.read_csv(prism).columns) == ["animal", "blinded"]


def test_log_and_errors_name_no_file(runs):
    assert any("R02_L5_s1" in line for line in runs["plain_logged"])  # the check can fail
    assert runs["logged"]
    for line in runs["logged"]:
        for s in _secrets(runs):
            assert not re.search(rf"(?<![A-Za-z0-9]){re.escape(s)}(?![A-Za-z0-9])", line,
                                 re.IGNORECASE), (s, line)
    errors = pd.read_csv(runs["base"] / "blind" / "errors.csv", dtype=str)
    assert len(errors) == 1 and errors["image"].str.fullmatch(r"S[0-9A-Z]{6}").all()


def test_resume_keeps_codes_and_reuses_every_result(runs):
    # every finished image reused; the unreadable one is tried again
    assert runs["resumed"].n_reused == runs["blind"].n_units - 1
    assert runs["resumed"].n_run == 0 and len(runs["resumed"].errors) == 1
    assert (runs["base"] / "blind.blinding-key.csv").read_text() == runs["key_before"]


def test_unblinded_tables_equal_the_plain_run(runs):
    plain, un = runs["plain"].tables, runs["unblind"].tables
    assert len(plain.errors) == 1
    for name in ("sections", "animals", "objects", "errors"):
        pd.testing.assert_frame_equal(getattr(un, name), getattr(plain, name))
    assert un.prism.keys() == plain.prism.keys()
    for k in plain.prism:
        pd.testing.assert_frame_equal(un.prism[k], plain.prism[k])
    out = runs["base"] / "blind-unblinded"
    for f in ("sections.csv", "tables/blobs__animals.csv", "long.csv", "objects.csv"):
        pd.testing.assert_frame_equal(pd.read_csv(out / f), pd.read_csv(
            runs["base"] / "plain" / f))
    qc = sorted(p.relative_to(out).as_posix() for p in (out / "qc").rglob("*.png"))
    assert qc == sorted(p.relative_to(runs["base"] / "plain").as_posix()
                        for p in (runs["base"] / "plain" / "qc").rglob("*.png"))
    record = json.loads((out / "run.json").read_text())
    plain_record = json.loads((runs["base"] / "plain" / "run.json").read_text())
    assert record["inputs"] == plain_record["inputs"]
    assert record["failures"] == plain_record["failures"]
    assert record["sample_sheet"] == plain_record["sample_sheet"]


def test_wrong_key_is_refused_and_nothing_written(runs, tmp_path, monkeypatch):
    from histoquant.batch.blinding import BlindingError, unblind

    register(monkeypatch, BLOB_SPEC)

    key = pd.read_csv(runs["base"] / "blind.blinding-key.csv", dtype=str)
    other = key.assign(run="0123456789abcdef")
    other.to_csv(tmp_path / "other.csv", index=False)
    with pytest.raises(BlindingError, match="another blinded run"):
        unblind(runs["base"] / "blind", tmp_path / "other.csv", tmp_path / "un")
    assert not (tmp_path / "un").exists()
    # the right run, but codes that are not the ones the parts were made with
    swapped = key.assign(image_code=key["image_code"][::-1].to_numpy())
    swapped.to_csv(tmp_path / "swapped.csv", index=False)
    with pytest.raises(BlindingError, match="not in"):
        unblind(runs["base"] / "blind", tmp_path / "swapped.csv", tmp_path / "un2")
    assert not (tmp_path / "un2").exists()
    # the plain sample sheet has no codes: it cannot be the key
    with pytest.raises(BlindingError, match="sample sheet alone"):
        unblind(runs["base"] / "blind", runs["folder"] / "samples.csv", tmp_path / "un3")


def test_key_inside_results_and_mixed_runs_are_refused(runs, tmp_path, monkeypatch):
    from histoquant.batch import run_batch
    from histoquant.batch.blinding import BlindingError

    register(monkeypatch, BLOB_SPEC)
    with pytest.raises(BlindingError, match="inside"):
        run_batch(runs["folder"], tmp_path / "o", blind=True,
                  key_out=tmp_path / "o" / "key.csv")
    with pytest.raises(BlindingError, match="unblinded run"):
        run_batch(runs["folder"], runs["base"] / "plain", blind=True,
                  key_out=tmp_path / "k.csv")
    with pytest.raises(BlindingError, match="holds a blinded run"):
        run_batch(runs["folder"], runs["base"] / "blind")


def test_cli_blind_and_unblind(runs, tmp_path, monkeypatch, capsys):
    from histoquant.cli import main

    register(monkeypatch, BLOB_SPEC)
    out = tmp_path / "cli"
    # exit status 1: the unreadable image failed (as in a plain run)
    assert main(["batch", str(runs["folder"]), "-o", str(out), "--blind", "--key-out",
                 str(tmp_path / "key.csv"), "-q"]) == 1
    assert (tmp_path / "key.csv").is_file() and (tmp_path / "key.csv.hashes.json").is_file()
    assert not (out / ".parts" / "hashes.json").exists()
    assert main(["unblind", str(out), "--key", str(runs["base"] / "blind.blinding-key.csv"),
                 "-o", str(tmp_path / "u")]) == 2
    assert "another blinded run" in capsys.readouterr().err
    assert main(["unblind", str(out), "--key", str(tmp_path / "key.csv"), "-o",
                 str(tmp_path / "u"), "-q"]) == 1
    got = pd.read_csv(tmp_path / "u" / "long.csv")
    pd.testing.assert_frame_equal(got, pd.read_csv(runs["base"] / "plain" / "long.csv"))


def test_exclusion_declared_by_code_while_blind_holds_after_unblinding(runs, tmp_path,
                                                                      monkeypatch):
    import shutil

    import yaml

    from histoquant.batch import run_batch, unblind

    register(monkeypatch, BLOB_SPEC)
    folder = tmp_path / "study"
    shutil.copytree(runs["folder"], folder)
    run_batch(folder, tmp_path / "b", blind=True)
    key = pd.read_csv(tmp_path / "b.blinding-key.csv", dtype=str)
    code = key.set_index("image_name").loc["R01_L4_s2", "image_code"]
    cfg = yaml.safe_load((folder / "study.yaml").read_text())
    cfg["exclusions"] = [{"sections": [f"{code}#2"], "reason": "folded tissue"}]
    (folder / "study.yaml").write_text(yaml.safe_dump(cfg))
    again = run_batch(folder, tmp_path / "b", blind=True, resume=True)
    assert again.n_run == 0  # declaring an exclusion measures nothing again
    sections = again.tables.sections
    assert sections.loc[sections["excluded"], "image"].unique().tolist() == [code]
    un = unblind(tmp_path / "b").tables
    gone = un.sections[un.sections["excluded"]]
    assert gone["image"].unique().tolist() == ["R01_L4_s2"]
    assert set(gone["exclusion_reason"]) == {"folded tissue"}
    plain = runs["plain"].tables.animals.set_index(["animal", "level"])
    got = un.animals.set_index(["animal", "level"])
    assert got.loc[("R01", "L4"), "n_sections"] == plain.loc[("R01", "L4"), "n_sections"] - 1
    assert got.loc[("R02", "L4"), "n_blobs"] == plain.loc[("R02", "L4"), "n_blobs"]


def test_scrubber_rewrites_names_not_numbers():
    from histoquant.batch.blinding import Scrubber

    s = Scrubber({"/data/R07/R07_L4_s2.ome.tif": "[path of S1]", "R07_L4_s2": "S1"},
                 {"R07": "A1", "MSC": "blinded"})
    assert s("cannot read /data/R07/R07_L4_s2.ome.tif (R07, msc): 12 % of R070") == \
        "cannot read [path of S1] (A1, blinded): 12 % of R070"
    assert s.deep({"R07": ["R07_L4_s2 ok", 3]}) == {"A1": ["S1 ok", 3]}
    frame = pd.DataFrame({"section": ["R07"], "flags": ["R07 torn"]})
    got = s.frame(frame)
    assert got["section"].tolist() == ["R07"] and got["flags"].tolist() == ["A1 torn"]


def test_statistics_wait_for_unblinding_and_methods_say_it_was_blind(runs):
    base = runs["base"]
    assert not (base / "blind" / "statistics.csv").exists()
    assert "This run is blind" in (base / "blind" / "methods.md").read_text()
    out = base / "blind-unblinded"
    pd.testing.assert_frame_equal(pd.read_csv(out / "statistics.csv"),
                                  pd.read_csv(base / "plain" / "statistics.csv"))
    methods = (out / "methods.md").read_text()
    assert "measured blind" in methods and "histoquant unblind" in methods
    assert "Blinding" not in (base / "plain" / "methods.md").read_text()
