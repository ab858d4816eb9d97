"""The blueprint class of every resource."""

from __future__ import annotations

import flask_smorest

from api.json_body import ArgumentsParser


class Blueprint(flask_smorest.Blueprint):
    """flask-smorest's Blueprint, reading JSON bodies with the gateway's parser."""

    ARGUMENTS_PARSER = ArgumentsParser()
