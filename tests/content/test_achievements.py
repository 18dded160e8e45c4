"""achievements.toml: loaded into Content.achievements and checked at load."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from baolife import content as content_pkg
from baolife.content import ContentError

MINI = Path(__file__).parent.parent / "data" / "mini"


def test_the_shipped_pack_has_its_achievements(content: content_pkg.Content) -> None:
    assert {"centenarian", "graduate", "home_owner", "married", "parent", "top_job", "millionaire", "debt_free"} <= set(
        content.achievements
    )
    assert content.achievements["home_owner"].flags == ("owns_house",)


def test_a_pack_without_the_file_has_none() -> None:
    assert content_pkg.load(MINI).achievements == {}


@pytest.mark.parametrize(
    ("body", "says"),
    [
        ('id = "a"\nlabel = "A"\n', "achievement 'a': sets no condition"),
        ('id = "a"\nlabel = "A"\nflags = ["nope"]\n', "flag 'nope' is not declared"),
        ('id = "a"\nlabel = "A"\neducation = ["phd"]\n', "unknown education 'phd'"),
        ('id = "a"\nlabel = "A"\nnpc_roles = ["dragon"]\n', "no persona speaks for role 'dragon'"),
        ('id = "a"\nlabel = "A"\nmin_money = "lots"\n', "achievements.toml: achievement 'a'"),
        ('id = "a"\nlabel = "A"\ndebt_free = true\ncolour = "gold"\n', "colour"),
    ],
)
def test_broken_achievements_are_refused_naming_file_and_id(tmp_path: Path, body: str, says: str) -> None:
    pack = tmp_path / "mini"
    shutil.copytree(MINI, pack)
    (pack / "achievements.toml").write_text("[[achievement]]\n" + body)
    with pytest.raises(ContentError, match="achievements.toml") as info:
        content_pkg.load(pack)
    assert says in str(info.value)
