"""The HTTP API reads objective weights with the engine's parser, as the CLI does."""

from __future__ import annotations

import click
import pytest
from fastapi import HTTPException

from target_personalize.commands._options import parse_objectives
from target_personalize.engine import Objectives, RankerError
from target_personalize.serve.app import _parse_objectives


def test_the_api_and_the_cli_read_the_same_weights() -> None:
    assert _parse_objectives("conversion:1,margin=0.5") == Objectives(1.0, 0.5)
    assert parse_objectives(("conversion:1", "margin=0.5")) == Objectives(1.0, 0.5)
    assert _parse_objectives(None) is None
    assert parse_objectives(()) is None


@pytest.mark.parametrize("text", ["margin", "clicks:1", "margin:-2"])
def test_the_api_and_the_cli_refuse_alike(text: str) -> None:
    with pytest.raises(RankerError) as engine:
        Objectives.from_pairs([text])
    with pytest.raises(HTTPException) as api:
        _parse_objectives(text)
    assert api.value.status_code == 422
    assert api.value.detail[0]["msg"] == str(engine.value)
    assert api.value.detail[0]["loc"] == ["query", "objectives"]
    with pytest.raises(click.BadParameter) as cli:
        parse_objectives((text,))
    assert cli.value.message == str(engine.value)
