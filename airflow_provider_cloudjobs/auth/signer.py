"""Huawei Cloud ``SDK-HMAC-SHA256`` request signing (AK/SK), client and server side.

The algorithm is the one of the official SDK signer (``huaweicloudsdkcore/signer/signer.py``) and of the
API Gateway SDK (``apig_sdk/signer.py``), re-implemented with the standard library only so the provider
does not depend on the SDK. The facts it has to reproduce byte for byte:

* Canonical request: ``METHOD \\n URI \\n QUERY \\n HEADERS \\n SIGNED_HEADERS \\n HEX(SHA256(body))``.
* URI: the path is percent-*decoded*, split on ``/``, each segment re-encoded (only ``A-Z a-z 0-9 - _ . ~``
  stay literal) and a ``/`` is appended when the result does not end with one. So ``/a`` and ``/a/`` sign
  alike, and an encoded ``%2F`` inside a segment becomes a separator.
* Query: pairs are decoded, sorted by (key, value) on the decoded text, re-encoded as for path segments and
  joined as ``k=v`` with ``&``; a key without a value signs as ``k=``; repeated keys stay, values sorted.
* Headers: names lower-cased, values stripped (inner whitespace is kept), sorted by name, each line
  ``name:value\\n``. Headers whose *name* contains ``_`` are not signed (newer official SDKs skip them
  because proxies such as nginx drop them by default).
* Signed by default: every given header except those with ``_``, plus ``host`` and ``x-sdk-date`` which the
  signer supplies. Content-Type is *not* added by the signer; it is signed only when the caller passes it.
  The SDK's own test vectors pass only ``X-Sdk-Date`` and ``TEST_UNDERSCORE``, hence ``host;x-sdk-date``.
* Body: SHA-256 of the bytes (``str`` is UTF-8); an empty body always hashes as the empty string. When the
  caller passes ``X-Sdk-Content-Sha256`` and the body is not empty, that header's value stands in for the
  hash (the official SDK sets ``UNSIGNED-PAYLOAD`` for non-JSON content types; this module never adds it,
  so the payload is always covered unless the caller asks otherwise).
* String to sign: ``SDK-HMAC-SHA256\\n<X-Sdk-Date>\\n<HEX(SHA256(canonical request))>``; signature is the
  lowercase hex HMAC-SHA256 of it, keyed with the secret key's UTF-8 bytes (no key derivation).
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from urllib.parse import quote, unquote, urlsplit

__all__ = [
    "ALGORITHM",
    "EMPTY_BODY_SHA256",
    "HEADER_AUTHORIZATION",
    "HEADER_CONTENT_SHA256",
    "HEADER_SDK_DATE",
    "ParsedAuthorization",
    "SignatureError",
    "canonical_query_string",
    "canonical_request",
    "canonical_uri",
    "compute_signature",
    "format_sdk_date",
    "parse_authorization",
    "sign_request",
    "split_query",
    "string_to_sign",
    "verify_request",
]

ALGORITHM = "SDK-HMAC-SHA256"
HEADER_SDK_DATE = "X-Sdk-Date"
HEADER_AUTHORIZATION = "Authorization"
HEADER_CONTENT_SHA256 = "X-Sdk-Content-Sha256"
EMPTY_BODY_SHA256 = hashlib.sha256(b"").hexdigest()
UNSIGNED_PAYLOAD = "UNSIGNED-PAYLOAD"

_DATE_FORMAT = "%Y%m%dT%H%M%SZ"
_DATE_RE = re.compile(r"\d{8}T\d{6}Z")
_DEFAULT_PORTS = {"http": 80, "https": 443}
# What API Gateway answers for every AK/SK failure of an IAM-authenticated API (HTTP 401).
_CODE = "APIGW.0301"
_AK_RE = re.compile(r"[^\s,=;]+")
_HEADER_NAME_RE = re.compile(r"[!#$%&'*+.^_`|~0-9a-z-]+")
_SIGNATURE_RE = re.compile(r"[0-9a-fA-F]{64}")


class SignatureError(Exception):
    """A received request failed AK/SK verification; ``code``/``message`` are what API Gateway returns.

    ``reason`` is a stable machine-readable tag (``missing_authorization``, ``malformed_authorization``,
    ``unknown_access_key``, ``missing_date``, ``invalid_date``, ``clock_skew``, ``signature_mismatch``)
    so callers and tests need not parse the human message. The secret key is never part of any of them.
    """

    def __init__(self, code: str, message: str, *, reason: str = "") -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.reason = reason

    def __repr__(self) -> str:
        return f"SignatureError(code={self.code!r}, reason={self.reason!r}, message={self.message!r})"


@dataclass(frozen=True)
class ParsedAuthorization:
    """The three parameters of an ``SDK-HMAC-SHA256`` Authorization header (none of them secret)."""

    access_key: str
    signed_headers: tuple[str, ...]
    signature: str


# -- building blocks ---------------------------------------------------------------------------------
def format_sdk_date(when: datetime | None = None) -> str:
    """``X-Sdk-Date`` text (``20200608T023900Z``) for ``when`` in UTC; naive datetimes are taken as UTC."""
    if when is None:
        when = datetime.now(timezone.utc)
    elif when.tzinfo is not None:
        when = when.astimezone(timezone.utc)
    return when.strftime(_DATE_FORMAT)


def _parse_sdk_date(value: str) -> datetime:
    """Strict parse: the date text is signed verbatim, so a lenient parse could verify a different text."""
    if not _DATE_RE.fullmatch(value):
        raise ValueError(f"X-Sdk-Date must look like 20200608T023900Z, got {value[:40]!r}")
    return datetime.strptime(value, _DATE_FORMAT).replace(tzinfo=timezone.utc)


def _encode(text: str) -> str:
    """RFC 3986 unreserved characters stay, everything else (UTF-8) is %XX-escaped, as the SDK does."""
    return quote(text, safe="~")


def canonical_uri(path: str) -> str:
    """Canonical URI of a raw (percent-encoded) path: decode, split on ``/``, re-encode, end with ``/``."""
    uri = "/".join(_encode(segment) for segment in unquote(path).split("/"))
    return uri if uri.endswith("/") else uri + "/"


def split_query(raw_query: str) -> list[tuple[str, str]]:
    """Decoded ``(key, value)`` pairs of a raw query string, as the API Gateway SDK splits it.

    ``&`` separates pairs, the first ``=`` separates key from value, a bare key has the value ``""``, a pair
    with an empty key (``=v``) is kept and signed as the official SDK signs it, an empty item is dropped, and
    ``+`` is a literal plus (the SDK never writes ``+`` for a space; it sends ``%20``).
    """
    pairs: list[tuple[str, str]] = []
    for item in raw_query.split("&"):
        key, sep, value = item.partition("=")
        if key or sep:
            pairs.append((unquote(key), unquote(value)))
    return pairs


def canonical_query_string(query_pairs: Sequence[tuple[str, str]]) -> str:
    """Sort decoded pairs by (key, value), encode both, join as ``k=v&...`` (``k=`` for a bare key)."""
    return "&".join(f"{_encode(key)}={_encode(value)}" for key, value in sorted(query_pairs))


def _lower_headers(headers: Mapping[str, str]) -> dict[str, str]:
    """Lower-cased names, first value wins for a name repeated in a multi-dict (aiohttp request headers)."""
    lowered: dict[str, str] = {}
    for name, value in headers.items():
        lowered.setdefault(name.lower(), value)
    return lowered


def canonical_request(
    method: str,
    path: str,
    query_pairs: Sequence[tuple[str, str]],
    headers: Mapping[str, str],
    signed_headers: Sequence[str],
    body_hash_hex: str,
) -> str:
    """The text whose hash is signed; ``path`` is raw, ``query_pairs`` decoded, header names any case."""
    lowered = _lower_headers(headers)
    lines = []
    for name in signed_headers:
        if name not in lowered:
            raise ValueError(f"signed header {name!r} is not among the request headers")
        lines.append(f"{name}:{lowered[name].strip()}\n")
    return "\n".join(
        [
            method.upper(),
            canonical_uri(path),
            canonical_query_string(query_pairs),
            "".join(lines),
            ";".join(signed_headers),
            body_hash_hex,
        ]
    )


def string_to_sign(canonical: str, sdk_date: str) -> str:
    """``ALGORITHM\\nDATE\\nHEX(SHA256(canonical))``; the date is the X-Sdk-Date text as sent."""
    digest = hashlib.sha256(canonical.encode("utf-8")).hexdigest()
    return f"{ALGORITHM}\n{sdk_date}\n{digest}"


def compute_signature(string_to_sign: str, secret_key: str) -> str:
    """Lowercase hex HMAC-SHA256 of the string to sign, keyed with the SK's UTF-8 bytes."""
    key = secret_key.encode("utf-8")
    return hmac.new(key, string_to_sign.encode("utf-8"), hashlib.sha256).hexdigest()


def _payload_hash(body: bytes, lowered_headers: Mapping[str, str]) -> str:
    """Empty body → hash of ``b""``; else an explicit X-Sdk-Content-Sha256 wins; else SHA-256 of body."""
    if not body:
        return EMPTY_BODY_SHA256
    explicit = lowered_headers.get(HEADER_CONTENT_SHA256.lower())
    if explicit:
        return explicit
    return hashlib.sha256(body).hexdigest()


def _received_payload_hash(body: bytes, lowered: Mapping[str, str], signed_headers: Sequence[str]) -> str:
    """Payload hash of a received request, honouring X-Sdk-Content-Sha256 only when the client signed it.

    ``UNSIGNED-PAYLOAD`` (what the official SDK sends for non-JSON bodies) is accepted as API Gateway
    does; any other declared hash must really be the body's, so the header cannot smuggle a swapped body.
    """
    name = HEADER_CONTENT_SHA256.lower()
    declared = lowered.get(name, "").strip() if name in signed_headers else ""
    if not body or not declared:
        return _payload_hash(body, {})
    if declared != UNSIGNED_PAYLOAD and declared.lower() != hashlib.sha256(body).hexdigest():
        raise SignatureError(
            _CODE, f"{HEADER_CONTENT_SHA256} does not match the body", reason="signature_mismatch"
        )
    return declared


def _host_from_url(url: str) -> str:
    """The Host header HTTP clients (requests/urllib3, aiohttp) send: lower-case host, port if non-default."""
    parts = urlsplit(url)
    host = parts.hostname
    if not host:
        raise ValueError("the URL has no host")
    if ":" in host:  # IPv6 literal
        host = f"[{host}]"
    port = parts.port
    if port is not None and port != _DEFAULT_PORTS.get(parts.scheme.lower()):
        host = f"{host}:{port}"
    return host


def _authorization_value(access_key: str, signed_headers: Sequence[str], signature: str) -> str:
    return f"{ALGORITHM} Access={access_key}, SignedHeaders={';'.join(signed_headers)}, Signature={signature}"


# -- client side -------------------------------------------------------------------------------------
def sign_request(
    method: str,
    url: str,
    headers: Mapping[str, str],
    body: bytes | str | None,
    access_key: str,
    secret_key: str,
    *,
    sdk_date: str | None = None,
) -> dict[str, str]:
    """Headers to send: a copy of ``headers`` plus ``X-Sdk-Date`` (if absent) and ``Authorization``.

    ``host`` is always signed (from a given Host header, else from the URL as clients send it) but is not
    added to the result: the HTTP client writes the same value itself. An ``X-Sdk-Date`` already in
    ``headers`` is used as is; ``sdk_date`` (or now) is used otherwise.
    """
    if not access_key or not _AK_RE.fullmatch(access_key):
        raise ValueError("the access key is empty or contains whitespace, ',', '=' or ';'")
    if not secret_key:
        raise ValueError("the secret key is empty")
    payload = body.encode("utf-8") if isinstance(body, str) else (body or b"")

    result = dict(headers)
    lowered = _lower_headers(result)
    given_date = lowered.get(HEADER_SDK_DATE.lower())
    if given_date is not None:
        if sdk_date is not None and sdk_date != given_date.strip():
            raise ValueError("sdk_date disagrees with the X-Sdk-Date header passed in headers")
        date_text = given_date.strip()
    else:
        date_text = sdk_date if sdk_date is not None else format_sdk_date()
        result[HEADER_SDK_DATE] = date_text
    _parse_sdk_date(date_text)

    # The signing view: what will be on the wire, with the Host the client adds; a stale Authorization
    # passed in is replaced below, so it must not be signed.
    result = {k: v for k, v in result.items() if k.lower() != HEADER_AUTHORIZATION.lower()}
    signing_view = dict(result)
    if "host" not in lowered:
        signing_view["host"] = _host_from_url(url)
    signed = sorted({name.lower() for name in signing_view if "_" not in name})

    parts = urlsplit(url)
    canonical = canonical_request(
        method,
        parts.path,
        split_query(parts.query),
        signing_view,
        signed,
        _payload_hash(payload, _lower_headers(signing_view)),
    )
    signature = compute_signature(string_to_sign(canonical, date_text), secret_key)
    result[HEADER_AUTHORIZATION] = _authorization_value(access_key, signed, signature)
    return result


# -- server side -------------------------------------------------------------------------------------
def parse_authorization(value: str) -> ParsedAuthorization:
    """Parse ``SDK-HMAC-SHA256 Access=AK, SignedHeaders=a;b, Signature=hex``; ValueError if malformed."""
    algorithm, _, params = value.strip().partition(" ")
    if algorithm != ALGORITHM:
        raise ValueError(f"the Authorization scheme is not {ALGORITHM}")
    fields: dict[str, str] = {}
    for item in params.split(","):
        name, sep, field_value = item.strip().partition("=")
        if not sep or name not in ("Access", "SignedHeaders", "Signature"):
            raise ValueError("the Authorization header has an unexpected parameter")
        if name in fields:
            raise ValueError(f"the Authorization header repeats {name}")
        fields[name] = field_value.strip()
    missing = [name for name in ("Access", "SignedHeaders", "Signature") if name not in fields]
    if missing:
        raise ValueError(f"the Authorization header lacks {', '.join(missing)}")
    access_key, signature = fields["Access"], fields["Signature"]
    if not _AK_RE.fullmatch(access_key):
        raise ValueError("the Authorization header has an empty or invalid Access")
    names = tuple(fields["SignedHeaders"].split(";"))
    if not all(_HEADER_NAME_RE.fullmatch(name) for name in names):
        raise ValueError("SignedHeaders must be lower-case header names separated by ';'")
    if not _SIGNATURE_RE.fullmatch(signature):
        raise ValueError("the Signature must be 64 hex digits")
    return ParsedAuthorization(access_key=access_key, signed_headers=names, signature=signature.lower())


def verify_request(
    method: str,
    raw_path: str,
    raw_query: str,
    headers: Mapping[str, str],
    body: bytes,
    secret_key_for: Callable[[str], str | None],
    *,
    now: datetime | None = None,
    max_skew_seconds: int = 900,
) -> str:
    """Check a received request's signature as API Gateway does; return its access key.

    Uses exactly the headers listed in SignedHeaders (so a client that signs Content-Type or Accept is
    fine), the raw path and query as they arrived, and an ``X-Sdk-Date`` within ``max_skew_seconds`` of
    ``now``. Raises :class:`SignatureError` with code ``APIGW.0301`` otherwise.
    """
    lowered = _lower_headers(headers)
    header = lowered.get(HEADER_AUTHORIZATION.lower())
    if not header:
        raise SignatureError(_CODE, "Authorization header not found", reason="missing_authorization")
    try:
        auth = parse_authorization(header)
    except ValueError as exc:
        raise SignatureError(
            _CODE, f"malformed Authorization header: {exc}", reason="malformed_authorization"
        ) from None

    secret_key = secret_key_for(auth.access_key)
    if not secret_key:
        raise SignatureError(_CODE, f"ak {auth.access_key[:64]} not exist", reason="unknown_access_key")

    date_text = (lowered.get(HEADER_SDK_DATE.lower()) or "").strip()
    if not date_text:
        raise SignatureError(_CODE, "X-Sdk-Date header not found", reason="missing_date")
    try:
        signed_at = _parse_sdk_date(date_text)
    except ValueError as exc:
        raise SignatureError(_CODE, str(exc), reason="invalid_date") from None
    current = now or datetime.now(timezone.utc)
    if current.tzinfo is None:
        current = current.replace(tzinfo=timezone.utc)
    skew = abs((current - signed_at).total_seconds())
    if skew > max_skew_seconds:
        raise SignatureError(
            _CODE,
            f"X-Sdk-Date {date_text} is {int(skew)}s away from the server time "
            f"(at most {max_skew_seconds}s allowed)",
            reason="clock_skew",
        )

    absent = [name for name in auth.signed_headers if name not in lowered]
    if absent:
        raise SignatureError(
            _CODE, f"signed header {absent[0]} is not in the request", reason="signature_mismatch"
        )
    body_hash = _received_payload_hash(body, lowered, auth.signed_headers)
    canonical = canonical_request(
        method, raw_path, split_query(raw_query), lowered, auth.signed_headers, body_hash
    )
    expected = compute_signature(string_to_sign(canonical, date_text), secret_key)
    if not hmac.compare_digest(expected, auth.signature):
        raise SignatureError(_CODE, "the signature does not match the request", reason="signature_mismatch")
    return auth.access_key
