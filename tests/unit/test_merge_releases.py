"""protocol_specs/merge_releases.py on small made-up specs: merged ranges, and loud failures."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

import pytest

_PATH = Path(__file__).resolve().parents[2] / "protocol_specs" / "merge_releases.py"
_SPEC = importlib.util.spec_from_file_location("merge_releases", _PATH)
assert _SPEC is not None and _SPEC.loader is not None
merge = importlib.util.module_from_spec(_SPEC)
_SPEC.loader.exec_module(merge)


def spec(versions: str, fields: list[dict[str, Any]], flexible: str = "2+") -> dict[str, Any]:
    return {"name": "ThingRequest", "type": "request", "api_key": 99, "versions": versions,
            "flexible": flexible, "fields": fields}


def field(name: str, versions: str, kind: str = "int32", **more: Any) -> dict[str, Any]:
    return {"name": name, "type": kind, "versions": versions, **more}


OLD = spec("0-3", [field("a", "0+"), field("gone", "0-1"), field("b", "2+", "string", nullable="3+")])


def test_versions_only_the_old_release_has_keep_its_fields() -> None:
    new = spec("2-4", [field("a", "0+"), field("b", "2+", "string", nullable="3+"), field("c", "4+")])
    out = merge.merge_message(OLD, new, {2, 3, 4})
    assert out["versions"] == "0-4" and out["flexible"] == "2+"
    assert [(f["name"], f["versions"], f.get("nullable")) for f in out["fields"]] == [
        ("a", "0+", None), ("gone", "0-1", None), ("b", "2+", "3+"), ("c", "4+", None)]


def test_a_rename_takes_the_new_name_at_shared_versions() -> None:
    new = spec("2-3", [field("a", "0+"), field("bee", "2+", "string", nullable="3+")])
    out = merge.merge_message(OLD, new, {2, 3})
    names = [(f["name"], f["versions"]) for f in out["fields"]]
    assert names == [("a", "0+"), ("gone", "0-1"), ("bee", "2+")]


def test_shared_versions_that_differ_on_the_wire_fail() -> None:
    new = spec("2-3", [field("a", "0+", "int64"), field("b", "2+", "string", nullable="3+")])
    with pytest.raises(merge.MergeError, match="v2: the two releases disagree"):
        merge.merge_message(OLD, new, {2, 3})


def test_unstable_old_versions_need_not_agree() -> None:
    new = spec("3", [field("a", "0+", "int64"), field("b", "2+", "string", nullable="3+")])
    out = merge.merge_message(OLD, new, {3}, unchecked={3})
    assert [(f["name"], f["type"], f["versions"]) for f in out["fields"] if f["name"] == "a"] == [
        ("a", "int32", "0-2"), ("a", "int64", "3")]


def test_a_gap_in_the_versions_fails() -> None:
    with pytest.raises(merge.MergeError, match="not one range"):
        merge.merge_message(spec("0-1", [field("a", "0+")]), spec("3-4", [field("a", "3+")]), {3, 4})


def test_a_changed_default_fails() -> None:
    new = spec("2-3", [field("a", "0+", default=-1), field("b", "2+", "string", nullable="3+")])
    with pytest.raises(merge.MergeError, match="field a: default None vs -1"):
        merge.merge_message(OLD, new, {2, 3})
