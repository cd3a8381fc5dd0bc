"""Errors raised by the hook, classed so callers know whether waiting longer can help."""

from __future__ import annotations

from airflow_provider_cloudjobs._compat import AirflowException


class CloudJobsError(AirflowException):
    """Base class of every error this provider raises."""


class CloudJobsInputError(CloudJobsError, ValueError):
    """The caller's input is wrong (job id, service, connection field); raised before any request."""


class CloudJobsAPIError(CloudJobsError):
    """A request to the cloud failed.

    ``retryable`` is true for what waiting may cure (429, 5xx, connection errors, time-outs, a body
    that is not JSON); ``retry_after`` carries the server's ``Retry-After`` in seconds when it sent one.
    The message names the HTTP status, the cloud's error code and message and the ``X-Request-Id``
    (what support asks for) and never a credential.
    """

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        error_code: str | None = None,
        error_msg: str | None = None,
        request_id: str | None = None,
        retryable: bool = False,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.error_code = error_code
        self.error_msg = error_msg
        self.request_id = request_id
        self.retryable = retryable
        self.retry_after = retry_after


class CloudJobsAuthError(CloudJobsAPIError):
    """IAM refused the credentials, or a job call stayed unauthorised after one token refresh.

    Never retried: repeating a wrong password only brings IAM's account lock-out closer.
    """


class CloudJobNotFoundError(CloudJobsAPIError):
    """The job endpoint answered 404: the job is not visible (yet), or no longer."""
