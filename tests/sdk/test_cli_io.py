"""The CLI's small rules: where outputs go (sdk.outputs), data specs (sdk.dataspec), image inputs
(sdk.classify.expand_images)."""

from __future__ import annotations

import os

import pytest

import sdk
from sdk.classify import expand_images
from sdk.dataspec import check_spec
from sdk.outputs import dir_out, file_out, write_atomic


def test_one_file_verbs_put_their_default_name_into_an_existing_folder(tmp_path):
    assert file_out(tmp_path, "model.pt") == tmp_path / "model.pt"
    assert file_out(f"{tmp_path}/new{os.sep}", "model.pt") == tmp_path / "new" / "model.pt"
    assert file_out(tmp_path / "a" / "b.pt", "model.pt") == tmp_path / "a" / "b.pt"
    assert (tmp_path / "a").is_dir()
    (tmp_path / "file").write_text("x")
    with pytest.raises(sdk.InputError, match="is a file"):
        file_out(tmp_path / "file" / "m.pt", "model.pt")
    with pytest.raises(sdk.InputError, match="is a file"):
        dir_out(tmp_path / "file")


def test_a_failed_write_leaves_neither_file_nor_temp(tmp_path):
    def boom(tmp):
        tmp.write_text("half")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError):
        write_atomic(tmp_path / "out.json", boom)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    ("spec", "parsed"),
    [("digits", ("digits", "", 1)), ("digits:4", ("digits", "4", 4)),
     ("folder:a:b:32", ("folder", "a:b", 32)), ("folder:x:48x64", ("folder", "x", (48, 64))),
     ("cifar10:/d", ("cifar10", "/d", 32))],
)  # fmt: skip
def test_data_specs(spec, parsed):
    assert check_spec(spec) == parsed


@pytest.mark.parametrize(("spec", "message"), [("folder:photos", "SIZE"), ("imagenet", "unknown data spec")])
def test_bad_data_specs_say_the_form(spec, message):
    with pytest.raises(sdk.InputError, match=message):
        check_spec(spec)


def test_image_inputs_from_files_folders_and_globs(tmp_path):
    for name in ("b.png", "a.jpg", "notes.txt"):
        (tmp_path / name).write_bytes(b"")
    assert expand_images([tmp_path]) == [str(tmp_path / "a.jpg"), str(tmp_path / "b.png")]
    assert expand_images([str(tmp_path / "*.png"), tmp_path / "a.jpg"]) == [
        str(tmp_path / "b.png"), str(tmp_path / "a.jpg")
    ]  # fmt: skip
    for bad, message in ((tmp_path / "none.png", "does not exist"), (str(tmp_path / "*.bmp"), "no images")):
        with pytest.raises(sdk.InputError, match=message):
            expand_images([bad])
