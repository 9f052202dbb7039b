"""The ``personalize`` command: inspect the store, mine funnels, rank items."""

from __future__ import annotations

import click

from target_personalize.commands.experiment import experiment
from target_personalize.commands.funnel import funnel
from target_personalize.commands.ranking import evaluate_command, fit, rank, recommend
from target_personalize.commands.report import report
from target_personalize.commands.serve import keys, serve
from target_personalize.commands.summary import summary
from target_personalize.commands.tradeoff import tradeoff_command


@click.group()
@click.version_option(package_name="clickstream-personalize")
def main() -> None:
    """Personalization from your clickstream: inspect the store, mine funnels, rank items."""


main.add_command(summary)
main.add_command(funnel)
main.add_command(report)
main.add_command(fit)
main.add_command(recommend)
main.add_command(rank)
main.add_command(evaluate_command)
main.add_command(tradeoff_command)
main.add_command(serve)
main.add_command(keys)
main.add_command(experiment)
