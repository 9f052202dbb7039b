"""The experiments over HTTP: list, create, stop and read out (``/v1/experiments``).

Reading (the list, one readout) needs the read key; creating and stopping the write key. The
readout is :func:`readout_from_store`'s JSON (docs/experiments.md), computed on the store
thread; a create or a stop takes effect in the serving at once.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Depends, FastAPI, HTTPException, Query, Request

from target_personalize.engine import EngineError
from target_personalize.engine.experiments import Experiment, ExperimentError
from target_personalize.engine.experiments.registry import ExperimentRegistry
from target_personalize.engine.experiments.report import readout_from_store
from target_personalize.serve.experiments import ExperimentLab
from target_personalize.serve.models import ExperimentBody
from target_personalize.serve.served_log import in_store

__all__ = ["Lab", "add_experiment_routes"]


async def _lab(request: Request) -> ExperimentLab:
    lab: ExperimentLab = request.app.state.experiments
    return lab


Lab = Annotated[ExperimentLab, Depends(_lab)]


def _not_found_or_invalid(error: ExperimentError) -> HTTPException:
    text = str(error)
    status = 404 if text.startswith("no experiment") or "not defined in the store" in text else 422
    return HTTPException(status, str(error))


def add_experiment_routes(app: FastAPI, read: list[Any], write: list[Any]) -> None:
    """Add the ``/v1/experiments`` endpoints to ``app``, guarded by ``read`` and ``write``."""

    @app.get("/v1/experiments", tags=["experiments"], dependencies=read)
    async def list_experiments(
        lab: Lab,
        status: Annotated[str | None, Query(pattern="^(running|stopped)$")] = None,
    ) -> list[dict[str, Any]]:
        """Every experiment in the store (or those running or stopped), the newest first."""
        found = await in_store(
            lab.serving,
            lambda store: ExperimentRegistry(store).list(status),  # type: ignore[arg-type]
        )
        return [stored.as_dict() for stored in found]

    @app.post("/v1/experiments", tags=["experiments"], dependencies=write, status_code=201)
    async def create_experiment(body: ExperimentBody, lab: Lab) -> dict[str, Any]:
        """Define and start an experiment (its id must be new)."""
        try:
            experiment = Experiment.from_cli(
                body.experiment_id,
                body.variants,
                body.traffic,
                conversion=body.conversion,
                control=body.control,
            )
            stored = await lab.create(experiment)
        except ExperimentError as error:
            status = 409 if "exists already" in str(error) else 422
            raise HTTPException(status, str(error)) from None
        return stored.as_dict()

    @app.post("/v1/experiments/{experiment_id}/stop", tags=["experiments"], dependencies=write)
    async def stop_experiment(experiment_id: str, lab: Lab) -> dict[str, Any]:
        """Stop an experiment: its visitors get the default ranking from now on."""
        try:
            stored = await lab.stop(experiment_id)
        except ExperimentError as error:
            raise _not_found_or_invalid(error) from None
        return stored.as_dict()

    @app.get("/v1/experiments/{experiment_id}", tags=["experiments"], dependencies=read)
    async def experiment_readout(
        experiment_id: str,
        lab: Lab,
        conversion: str | None = None,
        control: str | None = None,
        sequential: bool = False,
    ) -> dict[str, Any]:
        """The readout: per-variant figures, lifts with intervals, SRM (docs/experiments.md)."""
        await lab.log.flush()  # every list served so far counts
        try:
            return await lab.serving.read(
                lambda store: readout_from_store(
                    store,
                    experiment_id,
                    conversion=conversion,
                    control=control,
                    sequential=sequential,
                ),
            )
        except ExperimentError as error:
            raise _not_found_or_invalid(error) from None
        except EngineError as error:
            raise HTTPException(422, str(error)) from None
