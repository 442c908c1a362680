"""This repository's claims run on the interp-claims pytest plugin (probes/plugin.py), which pip registers as the
``pytest11`` entry point ``interp_claims`` when the project is installed (README, Install). Its files are the
plugin's defaults: fixtures/models.toml, snapshots/, artifacts/."""
import pytest


def pytest_configure(config):
    if not config.pluginmanager.has_plugin("interp_claims"):
        raise pytest.UsageError("the interp-claims pytest plugin is not installed in this environment: run "
                                "`pip install -e .` in this repository (README, Install), then pytest again")
