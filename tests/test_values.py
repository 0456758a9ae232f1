"""The values stage: the image goes into Helm values files and not one other byte changes.

Every test edits real files with the real ruamel.yaml and reads the result
back with ruamel.yaml as YAML 1.2 and as YAML 1.1 (how Helm reads values).
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from ruamel.yaml import YAML

from tests.check_helpers import CHART_TGZ
from tooling import yamledit
from tooling.cli import main
from tooling.errors import ToolingError
from tooling.images import ImageReference, split_reference
from tooling.state import PushedImage, State
from tooling.values import ImageTarget, set_image
from tooling.yamledit import parse_path

REAL_HUB = Path(__file__).resolve().parents[2] / "shared" / "data" / "icesat-2020" / "hub"
PROJECT = Path(__file__).resolve().parents[1]
PROFILE_IMAGE = "jupyterhub.singleuser.profileList[0].kubespawner_override.image"
NEW = "127.0.0.1:5000/icesat/user-image:img-3f2a"


def read_values(text: str, version: tuple[int, int] | None = None) -> Any:
    yaml = YAML(typ="safe", pure=True)
    if version is not None:
        yaml.version = version
    return yaml.load(text)


def lookup(data: Any, path: str) -> Any:
    for step in parse_path(path):
        data = data[step]
    return data


def write(tmp_path: Path, text: str, name: str = "values.yaml") -> Path:
    path = tmp_path / name
    path.write_bytes(text.encode("utf-8"))
    return path


def set_in(path: Path, *paths: str, image: str = NEW, create: bool = False) -> str:
    """Run the stage on `path` and return the file's text afterwards."""
    targets = [ImageTarget(path, p, path.name) for p in paths]
    set_image(targets, ImageReference.parse(image, source="test"), create=create)
    return path.read_bytes().decode("utf-8")


def refusal(path: Path, *paths: str, image: str = NEW, create: bool = False) -> str:
    """The stage's refusal message; the file must be left exactly as it was."""
    before = path.read_bytes()
    with pytest.raises(ToolingError) as caught:
        set_in(path, *paths, image=image, create=create)
    assert path.read_bytes() == before
    return caught.value.message


# ---------------------------------------------------------------- the real hub's files


@pytest.mark.parametrize(
    ("name", "old"), [("staging.yaml", "uwhackweeks/icesat2:0e74ab6"), ("prod.yaml", "uwhackweeks/icesat2:2020.06.05")]
)
def test_real_hub_values_change_in_the_image_scalar_only(tmp_path: Path, name: str, old: str) -> None:
    path = tmp_path / name
    shutil.copyfile(REAL_HUB / name, path)
    before = path.read_bytes()
    start = before.index(old.encode())

    assert main(["set-image", str(path), "--path", PROFILE_IMAGE, "--image", NEW]) == 0

    after = path.read_bytes()
    assert after[:start] == before[:start]
    assert after[start : start + len(NEW)] == NEW.encode()
    assert after[start + len(NEW) :] == before[start + len(old) :]
    assert lookup(read_values(after.decode()), PROFILE_IMAGE) == NEW


@pytest.mark.parametrize(
    "path", ["jupyterhub.singleuser.image", "jupyterhub.cull.maxAge", "jupyterhub.singleuser.memory.limit"]
)
def test_real_common_yaml_is_refused_naming_both_memory_keys(
    tmp_path: Path, path: str, capsys: pytest.CaptureFixture[str]
) -> None:
    common = tmp_path / "common.yaml"
    shutil.copyfile(REAL_HUB / "common.yaml", common)
    before = common.read_bytes()

    code = main(["set-image", str(common), "--path", path, "--image", NEW, "--create"])

    err = capsys.readouterr().err
    assert code == 1
    assert err.startswith(f"error: {common}:18: duplicate key 'memory' in jupyterhub.singleuser (lines 6 and 18)")
    assert "Traceback" not in err
    assert common.read_bytes() == before


# ---------------------------------------------------------------- shapes of values files


Z2JH = """\
# Staging hub.
jupyterhub:  # the z2jh chart
  singleuser:
    # The user image; written by the toolkit.
    image:
      name: ghcr.io/org/hub-image  # where it lives
      tag: old-tag  # the tag,\ta tab inside

    # Profiles people choose from.
    profileList:
      - display_name: "Default"
        kubespawner_override:
          image: ghcr.io/org/hub-image:old-tag   # same image
"""


def test_mapping_form_changes_only_the_tag_when_the_name_is_the_same(tmp_path: Path) -> None:
    path = write(tmp_path, Z2JH)
    after = set_in(path, "jupyterhub.singleuser.image", image="ghcr.io/org/hub-image:img-1")
    assert after == Z2JH.replace("tag: old-tag  #", "tag: img-1  #")


def test_mapping_form_changes_name_and_tag_when_both_differ(tmp_path: Path) -> None:
    path = write(tmp_path, Z2JH)
    after = set_in(path, "jupyterhub.singleuser.image")
    expected = Z2JH.replace("name: ghcr.io/org/hub-image  #", "name: 127.0.0.1:5000/icesat/user-image  #")
    assert after == expected.replace("tag: old-tag  #", "tag: img-3f2a  #")


def test_several_paths_mapping_and_scalar_in_one_call(tmp_path: Path) -> None:
    path = write(tmp_path, Z2JH)
    after = set_in(
        path,
        "jupyterhub.singleuser.image",
        "jupyterhub.singleuser.profileList[0].kubespawner_override.image",
        image="ghcr.io/org/hub-image:img-2",
    )
    expected = Z2JH.replace("tag: old-tag  #", "tag: img-2  #").replace(
        "image: ghcr.io/org/hub-image:old-tag   #", "image: ghcr.io/org/hub-image:img-2   #"
    )
    assert after == expected


@pytest.mark.parametrize(
    ("before", "after"),
    [
        ("image: {name: a/b, tag: old}\n", "image: {name: a/b, tag: img-9}\n"),
        ("image: {name: x/y, tag: old}  # flow\n", "image: {name: a/b, tag: img-9}  # flow\n"),
        ("image: {name: 'a/b', tag: \"old\"}\n", "image: {name: 'a/b', tag: \"img-9\"}\n"),
        ("image: {\n  name: a/b,\n  tag: old\n}\n", "image: {\n  name: a/b,\n  tag: img-9\n}\n"),
        ("image:\n  name: a/b\n  tag: 'old'\n", "image:\n  name: a/b\n  tag: 'img-9'\n"),
        ('image:\n  name: a/b\n  tag: "old"\n', 'image:\n  name: a/b\n  tag: "img-9"\n'),
        (
            "image:\n  pullPolicy: Always\n  tag: old\n  name: a/b\n",
            "image:\n  pullPolicy: Always\n  tag: img-9\n  name: a/b\n",
        ),
        ("image:\n  name: a/b\n  tag:\n", "image:\n  name: a/b\n  tag: img-9\n"),
        ("image:\n  name: a/b\n  tag: null # fill in\n", "image:\n  name: a/b\n  tag: img-9 # fill in\n"),
        ("---\nimage:\n  name: a/b\n  tag: old\n...\n", "---\nimage:\n  name: a/b\n  tag: img-9\n...\n"),
        ("image:\n  name: a/b\n  tag: &t old\n", "image:\n  name: a/b\n  tag: &t img-9\n"),
        ("image:\n  name: a/b\n  tag: !!str old\n", "image:\n  name: a/b\n  tag: !!str img-9\n"),
    ],
)
def test_mapping_shapes_keep_everything_but_the_value(tmp_path: Path, before: str, after: str) -> None:
    path = write(tmp_path, before)
    assert set_in(path, "image", image="a/b:img-9") == after


def test_a_registry_port_inside_flow_style_is_quoted_and_plain_in_block_style(tmp_path: Path) -> None:
    path = write(tmp_path, "flow: {name: a, tag: old}\nblock:\n  name: a\n  tag: old\nlist: [a:1]\n")
    after = set_in(path, "flow", "block", "list[0]", image="localhost:5000/a/b:img-9")
    assert after == (
        'flow: {name: "localhost:5000/a/b", tag: img-9}\n'
        "block:\n  name: localhost:5000/a/b\n  tag: img-9\n"
        'list: ["localhost:5000/a/b:img-9"]\n'
    )


@pytest.mark.parametrize(
    ("before", "path", "after"),
    [
        ('images: [a/b:1, "c/d:2"]\n', "images[1]", 'images: [a/b:1, "a/b:img-9"]\n'),
        ("images: [a/b:1, c/d:2]\n", "images[0]", 'images: ["a/b:img-9", c/d:2]\n'),
        ("images: [a/b:1, 'c/d:2']\n", "images[1]", "images: [a/b:1, 'a/b:img-9']\n"),
        ("- image: old/x:1\n- image: 'old/y:2'\n", "[1].image", "- image: old/x:1\n- image: 'a/b:img-9'\n"),
        ("o:\n  image: &i old/x:1\n", "o.image", "o:\n  image: &i a/b:img-9\n"),
        ("o:\n  image: >-\n    old/x:1\n", "o.image", None),
    ],
)
def test_scalar_shapes(tmp_path: Path, before: str, path: str, after: str | None) -> None:
    file = write(tmp_path, before)
    if after is None:
        assert "block scalar" in refusal(file, path, image="a/b:img-9")
    else:
        assert set_in(file, path, image="a/b:img-9") == after


@pytest.mark.parametrize(
    ("tag", "written"),
    [
        ("20200605", '"20200605"'),
        ("2020.06", '"2020.06"'),
        ("2020.06.05", "2020.06.05"),
        ("1e5", '"1e5"'),
        ("0x1f", '"0x1f"'),
        ("0o17", '"0o17"'),
        ("1_000", '"1_000"'),
        ("true", '"true"'),
        ("yes", '"yes"'),  # a bool to YAML 1.1, so to Helm
        ("Off", '"Off"'),
        ("null", '"null"'),
        ("2020-06-05", '"2020-06-05"'),
        ("0e74ab6", "0e74ab6"),
        ("img-3f2a", "img-3f2a"),
    ],
)
def test_a_tag_is_always_written_as_a_string(tmp_path: Path, tag: str, written: str) -> None:
    path = write(tmp_path, "image:\n  name: a/b\n  tag: old\n")
    after = set_in(path, "image", image=f"a/b:{tag}")
    assert after == f"image:\n  name: a/b\n  tag: {written}\n"
    for version in (None, (1, 1)):
        assert read_values(after, version)["image"]["tag"] == tag


def test_a_quoted_tag_keeps_its_quotes_even_when_plain_would_do(tmp_path: Path) -> None:
    path = write(tmp_path, "a:\n  name: a/b\n  tag: '2020.06'\nb:\n  name: a/b\n  tag: \"old\"\n")
    after = set_in(path, "a", "b", image="a/b:2020.07")
    assert after == "a:\n  name: a/b\n  tag: '2020.07'\nb:\n  name: a/b\n  tag: \"2020.07\"\n"


def test_a_numeric_tag_already_holding_the_text_is_quoted_as_a_fix(tmp_path: Path) -> None:
    path = write(tmp_path, "image:\n  name: a/b\n  tag: 2020.06\n")
    targets = [ImageTarget(path, "image", "values.yaml")]
    update = set_image(targets, ImageReference.parse("a/b:2020.06", source="test"))
    assert update.changed
    assert path.read_text() == 'image:\n  name: a/b\n  tag: "2020.06"\n'


def test_crlf_file_stays_crlf(tmp_path: Path) -> None:
    text = "# hub\r\njupyterhub:\r\n  singleuser:\r\n    image:\r\n      name: a/b\r\n      tag: old # c\r\n"
    path = write(tmp_path, text)
    after = set_in(path, "jupyterhub.singleuser.image", image="a/b:img-9")
    assert after == text.replace("tag: old #", "tag: img-9 #")


def test_crlf_file_gets_crlf_lines_from_create(tmp_path: Path) -> None:
    text = "jupyterhub:\r\n  singleuser:\r\n    cpu:\r\n      limit: 2\r\n"
    path = write(tmp_path, text)
    after = set_in(path, "jupyterhub.singleuser.image", image="a/b:20200605", create=True)
    assert after == text + '    image:\r\n      name: a/b\r\n      tag: "20200605"\r\n'


def test_no_final_newline_stays_that_way(tmp_path: Path) -> None:
    path = write(tmp_path, "image:\n  name: a/b\n  tag: old  # last")
    assert set_in(path, "image", image="a/b:img-9") == "image:\n  name: a/b\n  tag: img-9  # last"


def test_no_final_newline_with_create(tmp_path: Path) -> None:
    path = write(tmp_path, "jupyterhub:\n  singleuser:\n    cpu: 2")
    after = set_in(path, "jupyterhub.singleuser.image", image="a/b:img-9", create=True)
    assert after == "jupyterhub:\n  singleuser:\n    cpu: 2\n    image:\n      name: a/b\n      tag: img-9"


def test_nested_under_a_parent_chart_key(tmp_path: Path) -> None:
    text = "hub-chart:\n  jupyterhub:\n    singleuser:\n      image: {name: a/b, tag: old}\n  other: 1\n"
    path = write(tmp_path, text)
    after = set_in(path, "hub-chart.jupyterhub.singleuser.image", image="a/b:img-9")
    assert after == text.replace("tag: old", "tag: img-9")


def test_utf8_bom_and_non_ascii_comments_survive(tmp_path: Path) -> None:
    text = "\ufeff# Hub für die Woche — ☃\nimage: a/b:old  # ✓\n"
    path = write(tmp_path, text)
    assert set_in(path, "image", image="a/b:img-9") == text.replace("a/b:old", "a/b:img-9")


# ---------------------------------------------------------------- anchors and aliases


def test_an_alias_at_the_target_is_refused_naming_the_anchor(tmp_path: Path) -> None:
    path = write(tmp_path, "base: &img a/b:1\nsingleuser:\n  image: *img\n")
    message = refusal(path, "singleuser.image")
    assert message.startswith("values.yaml:3: singleuser.image is the alias *img of the anchor &img at line 1")


def test_an_aliased_mapping_on_the_way_is_refused(tmp_path: Path) -> None:
    path = write(tmp_path, "defaults: &d\n  image: {name: a/b, tag: '1'}\nsingleuser: *d\n")
    message = refusal(path, "singleuser.image")
    assert message.startswith("values.yaml:3: singleuser is the alias *d of the anchor &d at line 1")


def test_an_alias_in_a_name_tag_mapping_is_refused(tmp_path: Path) -> None:
    path = write(tmp_path, "t: &t old\nimage:\n  name: a/b\n  tag: *t\n")
    assert refusal(path, "image").startswith("values.yaml:4: image.tag is the alias *t of the anchor &t at line 1")


def test_a_key_that_comes_from_a_merge_is_refused(tmp_path: Path) -> None:
    path = write(tmp_path, "base: &b\n  image: a/b:1\nprofile:\n  <<: *b\n  cpu: 2\n")
    message = refusal(path, "profile.image", create=True)
    assert message.startswith("values.yaml:4: profile.image comes from the merge key '<<' (the anchor &b at line 1)")


def test_an_anchored_value_changes_in_place_and_its_aliases_are_reported(tmp_path: Path) -> None:
    text = "shared: &img a/b:old\nprofiles:\n  - image: *img\n  - image: *img\n"
    path = write(tmp_path, text)
    update = set_image([ImageTarget(path, "shared", "values.yaml")], ImageReference.parse("a/b:new", source="test"))
    assert path.read_text() == text.replace("a/b:old", "a/b:new")
    assert update.locations[0].also_read_at == (3, 4)
    assert [p["image"] for p in read_values(path.read_text())["profiles"]] == ["a/b:new", "a/b:new"]


# ---------------------------------------------------------------- refusals


@pytest.mark.parametrize(
    ("text", "path", "expected"),
    [
        ("a:\n  b: 1\n", "a.image", "values.yaml:1: a.image does not exist: a has no key 'image'."),
        ("a:\n  b: 1\n", "x.y", "values.yaml:1: x.y does not exist: the document has no key 'x'."),
        ("a:\n  - 1\n", "a[3]", "values.yaml:2: a has 1 item, so a[3] does not exist"),
        ("a:\n  - 1\n", "a.b", "values.yaml:2: a is a list, not a mapping, so it has no key 'b'."),
        ("a: {b: 1}\n", "a[0]", "values.yaml:1: a is a mapping, not a list, so it has no [0]."),
        ("a:\n  image:\n    - x\n", "a.image", "values.yaml:3: a.image is a list, not an image"),
        (
            "a:\n  image:\n    pullPolicy: x\n",
            "a.image",
            "values.yaml:3: a.image is a mapping without name and tag keys",
        ),
        ("a:\n  image:\n    name: x\n", "a.image", "values.yaml:3: a.image is a mapping without a 'tag' key"),
        ("a:\n  image: 5\n", "a.image", "values.yaml:2: a.image is '5' (a YAML int), not an image"),
        ("a:\n  image:\nb: 1\n", "a.image", "values.yaml:2: a.image is empty, not an image"),
        ("a: [1, 2\n", "a", "values.yaml:2:1: not valid YAML: while parsing a flow sequence"),
        ("a: 1\n---\nb: 2\n", "a", "values.yaml: holds 2 YAML documents"),
        ("a: 1\nb:\n  c: 1\n  c: 2\n", "a", "values.yaml:4: duplicate key 'c' in b (lines 3 and 4)"),
        ("0x10: 1\n16: 2\n", "a", 'values.yaml:2: found duplicate key "16" with value "2" (original value: "1")'),
    ],
)
def test_refusals_name_the_file_and_line(tmp_path: Path, text: str, path: str, expected: str) -> None:
    assert refusal(write(tmp_path, text), path).startswith(expected)


def test_unreadable_files_are_refused(tmp_path: Path) -> None:
    control = write(tmp_path, "a: b\x07\n")
    assert refusal(control, "a").startswith("values.yaml:1:5: not valid YAML: character 0x0007 is not allowed")
    latin1 = tmp_path / "latin1.yaml"
    latin1.write_bytes(b"a: \xff\n")
    assert refusal(latin1, "a") == "latin1.yaml: not UTF-8 text (byte 3); Helm values files are UTF-8."
    with pytest.raises(ToolingError, match=r"^missing\.yaml: no such file\.$"):
        set_in(tmp_path / "missing.yaml", "a")


@pytest.mark.parametrize(
    ("text", "path", "expected"),
    [
        ("a: {b: 1}\n", "a.image", "values.yaml:1: a.image: --create adds keys to block mappings only"),
        ("a:\n  - 1\n", "a[1].image", "values.yaml:2: a has 1 item, so a[1] does not exist"),
        ("a:\n  image: {name: x}\n", "a.image", "values.yaml:2: a.image: --create adds keys to block mappings only"),
        ("a:\n  b: 1\n", "a.my key.image", "values.yaml: a.my key.image: --create does not write the key 'my key'"),
    ],
)
def test_create_refuses_what_it_cannot_add_cleanly(tmp_path: Path, text: str, path: str, expected: str) -> None:
    assert refusal(write(tmp_path, text), path, create=True).startswith(expected)


@pytest.mark.parametrize(
    ("reference", "problem"),
    [
        ("ghcr.io/org/image", "it has no tag"),
        ("ghcr.io/org/image:", "Docker rejects the tag ''"),
        ("ghcr.io/org/image:-x", "Docker rejects the tag '-x'"),
        ("ghcr.io/org/image:a" + "b" * 128, "Docker rejects the tag"),
        ("ghcr.io/org/Image:1", "Docker rejects the name part 'Image'"),
        ("ghcr.io/org/image:1@sha256:" + "a" * 64, "a digest (@sha256:...) is not written"),
        (":1", "the name before the tag is empty"),
        ("bad_host:5000/x:1", "'bad_host:5000' is not a registry host[:port]"),
        ("a b:1", "Docker rejects the name part 'a b'"),
    ],
)
def test_image_references_docker_would_reject_are_refused(reference: str, problem: str) -> None:
    with pytest.raises(ToolingError) as caught:
        ImageReference.parse(reference, source="--image")
    assert caught.value.message.startswith(f"--image: {reference!r} is not an image NAME:TAG: {problem}")


@pytest.mark.parametrize(
    ("reference", "name", "tag"),
    [
        ("127.0.0.1:5000/x/y:tag", "127.0.0.1:5000/x/y", "tag"),
        ("localhost:5000/hub:2020.06", "localhost:5000/hub", "2020.06"),
        ("busybox:latest", "busybox", "latest"),
        ("Registry.Example.org/a__b/c-d.e:T_1", "Registry.Example.org/a__b/c-d.e", "T_1"),
    ],
)
def test_the_tag_is_what_follows_the_last_colon_after_the_last_slash(reference: str, name: str, tag: str) -> None:
    assert ImageReference.parse(reference, source="test") == ImageReference(name, tag)
    assert split_reference("127.0.0.1:5000/x/y") == ("127.0.0.1:5000/x/y", None)


def test_a_bad_path_syntax_is_refused() -> None:
    with pytest.raises(ToolingError, match=r"YAML path 'a\.\.b' is not of the form KEY\.KEY\[INDEX\]"):
        parse_path("a..b")
    assert parse_path("jupyterhub.singleuser.profileList[0].kubespawner_override.image") == (
        "jupyterhub",
        "singleuser",
        "profileList",
        0,
        "kubespawner_override",
        "image",
    )


# ---------------------------------------------------------------- --create


def test_create_adds_a_name_tag_mapping_with_the_files_indentation(tmp_path: Path) -> None:
    text = "jupyterhub:\n    singleuser:\n        cpu:\n            limit: 2  # two\n    # the hub\n    hub: {}\n"
    path = write(tmp_path, text)
    after = set_in(path, "jupyterhub.singleuser.image", image="a/b:img-9", create=True)
    expected = text.replace(
        "limit: 2  # two\n", "limit: 2  # two\n        image:\n            name: a/b\n            tag: img-9\n"
    )
    assert after == expected


def test_create_under_kubespawner_override_writes_a_string(tmp_path: Path) -> None:
    text = "jupyterhub:\n  singleuser:\n    profileList:\n      - display_name: Default\n        default: true\n"
    path = write(tmp_path, text)
    after = set_in(path, PROFILE_IMAGE, image="a/b:img-9", create=True)
    assert after == text + "        kubespawner_override:\n          image: a/b:img-9\n"


def test_create_fills_an_empty_key_and_an_empty_file(tmp_path: Path) -> None:
    path = write(tmp_path, "jupyterhub:\n  singleuser:   # nothing yet\nother: 1\n")
    after = set_in(path, "jupyterhub.singleuser.image", image="a/b:img-9", create=True)
    assert after == (
        "jupyterhub:\n  singleuser:   # nothing yet\n    image:\n      name: a/b\n      tag: img-9\nother: 1\n"
    )
    empty = write(tmp_path, "# values for a new hub\n", "new.yaml")
    assert set_in(empty, "singleuser.image", image="a/b:1", create=True) == (
        '# values for a new hub\nsingleuser:\n  image:\n    name: a/b\n    tag: "1"\n'
    )


def test_create_adds_a_missing_tag_to_an_image_mapping(tmp_path: Path) -> None:
    path = write(tmp_path, "image:\n  name: a/b\n  pullPolicy: Always\nother: 1\n")
    after = set_in(path, "image", image="a/b:img-9", create=True)
    assert after == "image:\n  name: a/b\n  pullPolicy: Always\n  tag: img-9\nother: 1\n"


def test_create_after_a_block_scalar_keeps_the_scalar(tmp_path: Path) -> None:
    text = "hub:\n  extraConfig:\n    a: |\n      print(1)\n\n  cpu: 1\n  script: |+\n    run\n\n"
    path = write(tmp_path, text)
    after = set_in(path, "hub.image", image="a/b:img-9", create=True)
    assert read_values(after)["hub"]["script"] == "run\n\n"
    assert lookup(read_values(after), "hub.image") == {"name": "a/b", "tag": "img-9"}
    assert after.startswith(text)


# ---------------------------------------------------------------- the safety net


def test_an_edit_that_would_touch_another_value_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """If splicing ever went wrong, the re-parse and comparison refuse instead of writing."""
    path = write(tmp_path, "image: a/b:old\nkeep: 1\n")
    real_splice = yamledit._splice
    monkeypatch.setattr(yamledit, "_splice", lambda text, edits: real_splice(text, edits).replace("keep: 1", "keep: 2"))
    message = refusal(path, "image")
    assert message.startswith("values.yaml: the edit would change more than the image (first difference at keep)")


def test_an_edit_that_would_break_the_file_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = write(tmp_path, "image: a/b:old\n")
    monkeypatch.setattr(yamledit, "_render", lambda value, style=None, in_flow=False: "[unclosed")
    message = refusal(path, "image")
    assert message.startswith("values.yaml: writing image would leave the file unreadable (values.yaml:2:1:")


# ---------------------------------------------------------------- many files, checks


def test_a_refusal_in_one_file_leaves_every_file_untouched(tmp_path: Path) -> None:
    good = write(tmp_path, "image: a/b:old\n", "good.yaml")
    bad = write(tmp_path, "image: 5\n", "bad.yaml")
    targets = [ImageTarget(good, "image", "good.yaml"), ImageTarget(bad, "image", "bad.yaml")]
    with pytest.raises(ToolingError, match=r"^bad\.yaml:1: image is '5'"):
        set_image(targets, ImageReference.parse("a/b:new", source="test"))
    assert good.read_text() == "image: a/b:old\n"


def test_check_writes_nothing_and_the_same_path_twice_is_harmless(tmp_path: Path) -> None:
    path = write(tmp_path, "image: a/b:old\n")
    targets = [ImageTarget(path, "image", "values.yaml")] * 2
    update = set_image(targets, ImageReference.parse("a/b:new", source="test"), check=True)
    assert path.read_text() == "image: a/b:old\n"
    assert [location.changed for location in update.locations] == [True, False]
    assert not update.written
    assert update.diff == "--- values.yaml\n+++ values.yaml\n@@ -1 +1 @@\n-image: a/b:old\n+image: a/b:new\n"


# ---------------------------------------------------------------- the command line


def test_set_image_check_exit_codes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write(tmp_path, Z2JH)
    argv = ["set-image", str(path), "--path", "jupyterhub.singleuser.image", "--image", "ghcr.io/org/hub-image:img-1"]

    assert main([*argv, "--check"]) == 1
    out = capsys.readouterr().out
    assert f"--- {path}\n+++ {path}\n" in out
    assert "-      tag: old-tag  # the tag,\ta tab inside\n+      tag: img-1  # the tag,\ta tab inside\n" in out
    assert path.read_text() == Z2JH

    assert main(argv) == 0
    assert "Wrote ghcr.io/org/hub-image:img-1 into 1 of 1 location" in capsys.readouterr().out
    assert main([*argv, "--check"]) == 0
    assert "OK: every location already holds ghcr.io/org/hub-image:img-1" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("text", "args", "expected"),
    [
        ("a:\n  b: 1\n", ["--path", "a.image"], "values.yaml:1: a.image does not exist"),
        ("a: [1,\n", ["--path", "a"], "values.yaml:2:1: not valid YAML"),
        ("a: b:1\n", ["--path", "a", "--image", "a/B:1"], "--image: 'a/B:1' is not an image NAME:TAG"),
    ],
)
def test_command_line_refusals_are_one_message_without_traceback(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], text: str, args: list[str], expected: str
) -> None:
    path = write(tmp_path, text)
    argv = ["set-image", str(path), *args]
    if "--image" not in args:
        argv += ["--image", NEW]
    assert main(argv) == 1
    captured = capsys.readouterr()
    assert captured.err.startswith("error: ")
    assert expected in captured.err
    assert "Traceback" not in captured.err
    assert captured.out == ""


HUB_TOML = f"""\
[image]
registry = "127.0.0.1:5000"
name = "hub/user-image"

[deploy.staging]
values = ["deploy/common.yaml", "deploy/staging.yaml"]
image = [
  {{ file = "deploy/staging.yaml", path = "singleuser.image" }},
  {{ file = "deploy/staging.yaml", path = "singleuser.profileList[0].kubespawner_override.image" }},
]
release = "hub-staging"
namespace = "hub-staging"
chart = "{CHART_TGZ}"
chart_version = "4.3.3"

[deploy.prod]
values = ["deploy/common.yaml", "deploy/prod.yaml"]
image = [{{ file = "deploy/prod.yaml", path = "singleuser.image" }}]
release = "hub-prod"
namespace = "hub-prod"
chart = "{CHART_TGZ}"
chart_version = "4.3.3"
"""

STAGING = """\
singleuser:
  image:
    name: 127.0.0.1:5000/hub/user-image
    tag: "img-000" # written by bump
  profileList:
    - display_name: Default
      kubespawner_override:
        image: 127.0.0.1:5000/hub/user-image:img-000
    - display_name: Whole node
      kubespawner_override: {cpu_guarantee: 7, cpu_limit: 8, mem_guarantee: 28G, mem_limit: 30G}
"""

PROD = """\
# prod gets its image from staging only
singleuser:
  image:
    name: 127.0.0.1:5000/hub/user-image
    tag: "img-000"
"""


@pytest.fixture
def hub(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, standin: Path) -> Path:
    """A hub whose values pass `check` (bump refuses values that fail it), on the real chart."""
    (tmp_path / "deploy").mkdir()
    write(tmp_path, HUB_TOML, "hub.toml")
    shutil.copyfile(PROJECT / "deploy" / "common.yaml", tmp_path / "deploy" / "common.yaml")
    write(tmp_path, STAGING, "deploy/staging.yaml")
    write(tmp_path, PROD, "deploy/prod.yaml")
    monkeypatch.delenv("GITHUB_STEP_SUMMARY", raising=False)
    return tmp_path


def record_push(hub: Path, reference: str) -> None:
    State.load(hub).record_push(PushedImage(reference, "sha256:" + "d" * 64, "sha256:" + "e" * 64))


def bump(hub: Path, *args: str) -> int:
    return main(["--config", str(hub / "hub.toml"), "bump", *args])


def test_bump_writes_the_last_pushed_tag_everywhere_hub_toml_names(
    hub: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    record_push(hub, "127.0.0.1:5000/hub/user-image:img-3f2a")
    summary = hub / "summary.md"
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))

    assert bump(hub, "staging") == 0

    assert (hub / "deploy/staging.yaml").read_text() == STAGING.replace("img-000", "img-3f2a")
    out = capsys.readouterr().out
    assert "--- deploy/staging.yaml\n+++ deploy/staging.yaml\n" in out
    assert "Next: commit deploy/staging.yaml, then deploy staging" in out
    report = (hub / ".hubship/reports/bump-staging.md").read_text()
    assert report.startswith(
        "### bump staging: `127.0.0.1:5000/hub/user-image:img-3f2a`\n\n"
        "Image from the last push (127.0.0.1:5000/hub/user-image:img-3f2a@sha256:"
    )
    assert "| `deploy/staging.yaml:8` | `singleuser.profileList[0].kubespawner_override.image` |" in report
    assert "deploy staging: `python -m tooling deploy staging`" in report
    assert summary.read_text().startswith(report.rstrip("\n"))


def test_bump_without_a_push_says_to_push_or_pass_a_tag(hub: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert bump(hub, "staging") == 1
    err = capsys.readouterr().err
    assert "No push is recorded" in err
    assert "Run `python -m tooling push` first, or pass --tag TAG." in err
    assert (hub / "deploy/staging.yaml").read_text() == STAGING


def test_bump_refuses_a_push_to_another_repository(hub: Path, capsys: pytest.CaptureFixture[str]) -> None:
    record_push(hub, "127.0.0.1:5000/elsewhere/image:img-1")
    assert bump(hub, "staging") == 1
    assert "The last push was 127.0.0.1:5000/elsewhere/image:img-1, but hub.toml's image is" in capsys.readouterr().err


def test_bump_with_a_tag_and_check(hub: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert bump(hub, "prod", "--tag", "20200605", "--check") == 1
    assert '+    tag: "20200605"' in capsys.readouterr().out
    assert (hub / "deploy/prod.yaml").read_text() == PROD
    assert not (hub / ".hubship/reports/bump-prod.md").exists()
    assert bump(hub, "prod", "--tag", "img-000", "--check") == 0


def test_bump_from_env_copies_stagings_image_to_prod(hub: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert bump(hub, "staging", "--tag", "2020.06") == 0
    assert bump(hub, "prod", "--from-env", "staging") == 0
    assert (hub / "deploy/prod.yaml").read_text() == PROD.replace('"img-000"', '"2020.06"')
    out = capsys.readouterr().out
    assert "Next: commit deploy/prod.yaml, then deploy prod: `python -m tooling deploy prod`." in out
    assert bump(hub, "prod", "--from-env", "staging", "--check") == 0


def test_bump_from_env_refuses_an_unquoted_numeric_tag(hub: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write(hub, STAGING.replace('"img-000"', "2020.06"), "deploy/staging.yaml")
    assert bump(hub, "prod", "--from-env", "staging") == 1
    err = capsys.readouterr().err
    assert "deploy/staging.yaml:4: singleuser.image.tag is written unquoted as 2020.06" in err
    assert "reads as a float" in err


def test_bump_refuses_to_leave_values_that_fail_the_check(hub: Path, capsys: pytest.CaptureFixture[str]) -> None:
    common = hub / "deploy/common.yaml"
    common.write_text(common.read_text().replace("  timeout: 3600\n  every: 300", "  timeout: 86400\n  every: 300"))
    assert bump(hub, "staging", "--tag", "img-1") == 1
    err = capsys.readouterr().err
    assert err.startswith("error: the staging values would fail `python -m tooling check staging`; they were left as")
    assert "idle-culling deploy/common.yaml:" in err
    assert "cull.timeout 86400 s; at most 3600 s" in err
    assert (hub / "deploy/staging.yaml").read_text() == STAGING
    assert not (hub / ".hubship/reports/bump-staging.md").exists()


def test_bump_refuses_unknown_environments_and_copying_onto_itself(
    hub: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert bump(hub, "qa", "--tag", "x") == 2
    assert "no [deploy.qa] table (environments: prod, staging)" in capsys.readouterr().err
    assert bump(hub, "prod", "--from-env", "prod") == 2
    assert "Cannot copy the image of prod onto itself" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exited:
        bump(hub, "prod", "--tag", "x", "--from-env", "staging")
    assert exited.value.code == 2


def test_bump_into_the_real_common_yaml_is_refused_with_both_lines(
    hub: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    shutil.copyfile(REAL_HUB / "common.yaml", hub / "deploy/common.yaml")
    config = hub / "hub.toml"
    config.write_text(config.read_text().replace('file = "deploy/prod.yaml"', 'file = "deploy/common.yaml"'))
    before = (hub / "deploy/common.yaml").read_bytes()

    assert bump(hub, "prod", "--tag", "img-1", "--create") == 1

    err = capsys.readouterr().err
    assert err.startswith(
        "error: deploy/common.yaml:18: duplicate key 'memory' in jupyterhub.singleuser (lines 6 and 18)"
    )
    assert (hub / "deploy/common.yaml").read_bytes() == before


# ---------------------------------------------------------------- any tag Docker accepts


TAGS = st.from_regex(r"\A[A-Za-z0-9_][A-Za-z0-9_.-]{0,40}\Z") | st.sampled_from(
    ["1", "01", "1.0", "1e3", "0x1F", "yes", "No", "on", "NULL", "2020-06-05", "12_30", "1_0.5", "0o7", "True", "nan"]
)


@settings(max_examples=150, deadline=None, database=None)
@given(tag=TAGS, quote=st.sampled_from(["", "'", '"']))
def test_any_docker_tag_reads_back_as_that_string(
    tmp_path_factory: pytest.TempPathFactory, tag: str, quote: str
) -> None:
    folder = tmp_path_factory.mktemp("tags")
    path = write(folder, f"image:\n  name: a/b\n  tag: {quote}old{quote}  # c\nscalar: {quote}a/b:old{quote}\n")
    after = set_in(path, "image", "scalar", image=f"a/b:{tag}")
    for version in (None, (1, 1)):
        data = read_values(after, version)
        assert data["image"]["tag"] == tag
        assert data["scalar"] == f"a/b:{tag}"
    assert after.startswith("image:\n  name: a/b\n  tag: ")
    assert "  # c\nscalar: " in after
