"""Validation errors name the field the way a user wrote it."""

from app.api.errors import field_path


def test_body_prefix_and_union_tags_are_dropped_and_indexes_bracketed() -> None:
    assert field_path(("body", "model", "layers", 2, "Dense", "units")) == "model.layers[2].units"


def test_optimizer_objects_lose_their_union_tag() -> None:
    assert field_path(("body", "compile", "optimizer", "SGD", "momentum")) == "compile.optimizer.momentum"


def test_the_whole_body_is_named_when_there_is_no_field() -> None:
    assert field_path(("body",)) == "body"
