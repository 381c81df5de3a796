"""``BaseData`` and ``Choices``: schema from annotations or ``get_keys()``, validation, keys vs values."""

from datetime import datetime, timedelta, timezone

import pytest

from nodejobs import BaseData, Choices, UnknownFieldError


class Colour(Choices):
    c_red = "red"
    c_blue = "blue"


class Point(BaseData):
    x: int
    y: (float, 0.0)
    label: (str, None)
    colour: (Colour, None)
    seen: (datetime, None)


class Segment(BaseData):
    start: Point
    end: (Point, None)


class Keyed(BaseData):
    """Schema declared by ``get_keys()`` instead of annotations."""

    @classmethod
    def get_keys(cls):
        return {"name": str}, {"size": (int, 3)}


class Strict(BaseData):
    _strict = True
    a: (int, None)


def test_class_attribute_is_the_key_and_instance_attribute_is_the_value():
    p = Point(x=1, label="here")
    assert Point.x == "x" and Point.label == "label"
    assert p.x == 1 and p.label == "here"
    assert p.colour is None  # unset optional field reads as None
    assert p[Point.x] == 1


def test_f_constants_name_every_field():
    assert (Point.f_x, Point.f_y, Point.f_label, Point.f_colour, Point.f_seen) == (
        "x",
        "y",
        "label",
        "colour",
        "seen",
    )
    assert Keyed.f_name == "name" and Keyed.f_size == "size"


def test_instance_attribute_assignment_validates():
    p = Point(x=1)
    p.label = "new"
    assert p["label"] == "new"
    with pytest.raises(TypeError, match="label"):
        p.label = 5


def test_unknown_attribute_is_an_attribute_error():
    with pytest.raises(AttributeError, match="nope"):
        Point(x=1).nope  # noqa: B018


def test_wrong_type_on_construction_names_field_and_value():
    with pytest.raises(TypeError) as info:
        Point(x="seven")
    assert "Point.x" in str(info.value) and "'seven'" in str(info.value)


def test_wrong_type_on_item_assignment_names_field_and_value():
    p = Point(x=1)
    with pytest.raises(TypeError) as info:
        p["label"] = 42
    assert "label" in str(info.value) and "42" in str(info.value)
    assert p.label is None  # the bad value was not stored


def test_bool_is_not_accepted_as_int_but_int_is_widened_to_float():
    with pytest.raises(TypeError, match="x"):
        Point(x=True)
    p = Point(x=1, y=2)
    assert p.y == 2.0 and isinstance(p.y, float)


def test_choice_outside_the_set_names_field_and_value():
    with pytest.raises(ValueError) as info:
        Point(x=1, colour="green")
    assert "colour" in str(info.value) and "'green'" in str(info.value)
    assert Point(x=1, colour=Colour.c_red).colour == "red"
    assert Colour.values() == frozenset({"red", "blue"})


def test_missing_required_field_is_named():
    with pytest.raises(ValueError, match="x"):
        Point(label="no x")
    with pytest.raises(ValueError, match="name"):
        Keyed(size=1)


def test_none_means_unset_for_optional_fields():
    p = Point(x=1, label=None)
    assert p.label is None


def test_datetimes_are_normalised_to_utc():
    naive = datetime(2024, 1, 2, 3, 4, 5)
    assert Point(x=1, seen=naive).seen == naive.replace(tzinfo=timezone.utc)
    plus_two = datetime(2024, 1, 2, 5, 4, 5, tzinfo=timezone(timedelta(hours=2)))
    assert Point(x=1, seen=plus_two).seen == datetime(2024, 1, 2, 3, 4, 5, tzinfo=timezone.utc)
    assert Point(x=1, seen=0).seen == datetime(1970, 1, 1, tzinfo=timezone.utc)
    assert Point(x=1, seen="2024-01-02T03:04:05+00:00").seen.tzinfo == timezone.utc
    with pytest.raises(TypeError, match="seen"):
        Point(x=1, seen="yesterday")


def test_clean_drops_unknown_keys_and_keeps_known_ones():
    p = Point({"x": 1, "extra": "kept until clean"}, label="l")
    assert p["extra"] == "kept until clean"
    assert p.clean() is p
    assert dict(p) == {"x": 1, "label": "l"}


def test_strict_class_refuses_unknown_keys():
    with pytest.raises(UnknownFieldError, match="b"):
        Strict(b=1)
    s = Strict()
    with pytest.raises(UnknownFieldError):
        s["b"] = 1
    assert isinstance(UnknownFieldError("x"), ValueError)


def test_nested_basedata_field_accepts_a_dict():
    seg = Segment(start={"x": 1}, end=Point(x=2))
    assert isinstance(seg.start, Point) and seg.start.x == 1
    assert isinstance(seg.end, Point) and seg.end.x == 2
    with pytest.raises(ValueError, match="x"):
        Segment(start={"y": 1.0})  # the nested record is validated too
    with pytest.raises(TypeError, match="start"):
        Segment(start=[1, 2])


def test_get_keys_schema_and_with_defaults():
    k = Keyed(name="n")
    assert k.size is None  # the value, not the default, until asked for
    assert k.with_defaults() == {"name": "n", "size": 3}
    assert Keyed.get_keys() == ({"name": str}, {"size": (int, 3)})
    with pytest.raises(TypeError, match="size"):
        Keyed(name="n", size="big")


def test_annotation_schema_reports_required_and_optional():
    required, optional = Point.get_keys()
    assert required == {"x": int}
    assert set(optional) == {"y", "label", "colour", "seen"}
    assert optional["y"] == (float, 0.0)


def test_update_and_setdefault_validate():
    p = Point(x=1)
    with pytest.raises(TypeError, match="x"):
        p.update(x="no")
    p.update({"label": "a"}, y=1.5)
    assert (p.label, p.y) == ("a", 1.5)
    assert p.setdefault("label", "other") == "a"
    with pytest.raises(TypeError, match="seen"):
        p.setdefault("seen", [])


def test_trusted_wraps_without_validating():
    p = Point.trusted({"x": "not checked"})
    assert isinstance(p, Point) and p.x == "not checked"


def test_schema_is_computed_once_per_class_not_per_instance(monkeypatch):
    calls = []
    original = Point.get_keys.__func__

    def counting(cls):
        calls.append(cls)
        return original(cls)

    monkeypatch.setattr(Point, "get_keys", classmethod(counting))
    records = [Point(x=i, label="l") for i in range(1000)]
    assert len(records) == 1000 and calls == []

    class Sub(Point):
        z: (int, None)

    assert calls == [Sub]  # computed once, when the subclass was created
    assert Sub(x=1, z=2).z == 2 and Sub.f_z == "z"


def test_string_annotations_are_refused_with_a_clear_message():
    with pytest.raises(TypeError, match="string annotation"):

        class Bad(BaseData):
            __annotations__ = {"x": "int"}  # what `from __future__ import annotations` produces


def test_repr_names_the_class():
    assert repr(Point(x=1)) == "Point({'x': 1})"
