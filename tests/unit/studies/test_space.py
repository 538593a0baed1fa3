"""The search space: corners checked at the door, the grid, points written by JSON Pointer."""

import pytest

from app.studies import space
from app.studies.schemas import Param


def p(**fields: object) -> Param:
    return Param.model_validate(fields)


def test_corners_are_the_whole_product_while_small() -> None:
    points = space.corners(
        {
            "/a": p(type="int", low=1, high=9),
            "/b": p(type="float", low=0.1, high=0.5),
            "/c": p(type="categorical", choices=["x", "y", "z"]),
        }
    )
    assert len(points) == 2 * 2 * 3
    assert {"/a": 9, "/b": 0.1, "/c": "z"} in points


def test_a_large_space_checks_each_dimensions_ends_and_the_extremes() -> None:
    wide = {f"/k{i}": p(type="int", low=0, high=1) for i in range(8)}  # 256 corners
    points = space.corners(wide)
    assert len(points) == 2 + 8
    assert {key: 1 for key in wide} in points and {key: 0 for key in wide} in points


def test_apply_sets_fields_by_pointer_and_leaves_the_base_alone() -> None:
    base = {"model": {"layers": [{"units": 8}]}, "compile": {"optimizer": {"type": "Adam"}}}
    point = {"/model/layers/0/units": 32, "/compile/optimizer/learning_rate": 0.1}
    request = space.apply(base, point)
    assert request["model"]["layers"][0]["units"] == 32
    assert request["compile"]["optimizer"] == {"type": "Adam", "learning_rate": 0.1}
    assert base["model"]["layers"][0]["units"] == 8


def test_the_grid_enumerates_ints_steps_and_choices() -> None:
    grid = space.grid({"/a": p(type="int", low=2, high=8, step=2), "/b": p(type="float", low=0.0, high=0.5, step=0.25)})
    assert grid == {"/a": [2, 4, 6, 8], "/b": [0.0, 0.25, 0.5]}
    with pytest.raises(space.SpaceError, match="step"):
        space.grid({"/b": p(type="float", low=0.0, high=0.5)})


@pytest.mark.parametrize(
    ("fields", "words"),
    [
        ({"type": "int", "low": 5, "high": 1}, "above high"),
        ({"type": "float", "low": 0, "high": 1, "log": True}, "low > 0"),
        ({"type": "int", "low": 1.5, "high": 3}, "whole number"),
        ({"type": "categorical", "choices": ["a"], "low": 1}, "choices` only"),
    ],
)
def test_inconsistent_parameters_are_refused(fields: dict[str, object], words: str) -> None:
    with pytest.raises(ValueError, match=words):
        Param.model_validate(fields)
