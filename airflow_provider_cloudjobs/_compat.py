"""Imports that moved between Airflow 3.1 and 3.3, resolved once so every other module stays clean."""

from __future__ import annotations

try:  # Airflow 3.2+
    from airflow.sdk.exceptions import (
        AirflowException,
        AirflowFailException,
        AirflowNotFoundException,
        AirflowSensorTimeout,
        AirflowSkipException,
    )
except ImportError:  # Airflow 3.1
    from airflow.exceptions import (  # type: ignore[no-redef]
        AirflowException,
        AirflowFailException,
        AirflowNotFoundException,
        AirflowSensorTimeout,
        AirflowSkipException,
    )

from airflow.sdk.log import mask_secret

try:  # Airflow 3.2+: tells the supervisor without a blocking send from the event loop
    from airflow.sdk.log import amask_secret
except ImportError:  # Airflow 3.1

    async def amask_secret(secret, name=None):  # type: ignore[no-untyped-def,misc]
        """Mask in this process only: a blocking supervisor send must not run on the event loop."""
        from airflow.sdk._shared.secrets_masker import _secrets_masker

        _secrets_masker().add_mask(secret, name)


__all__ = [
    "AirflowException",
    "AirflowFailException",
    "AirflowNotFoundException",
    "AirflowSensorTimeout",
    "AirflowSkipException",
    "amask_secret",
    "mask_secret",
]
