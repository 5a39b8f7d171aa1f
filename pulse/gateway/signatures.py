"""Authenticity of a delivery, per vendor (SPEC 8.3): pure functions of headers, body and clock.

Each check returns None when the request is authentic, else a short reason for the
log and the metrics (never the body, the signature or the secret). Every comparison
of a secret-derived value is constant time (hmac.compare_digest).
"""
from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
from typing import Mapping

# HubSpot v3: "decode these URL-encoded characters" in the request URI (its docs and SDK)
_HUBSPOT_DECODE = {"%3A": ":", "%2F": "/", "%3F": "?", "%40": "@", "%21": "!", "%24": "$", "%27": "'",
                   "%28": "(", "%29": ")", "%2A": "*", "%2C": ",", "%3B": ";"}
_HUBSPOT_ESCAPE_RE = re.compile("|".join(_HUBSPOT_DECODE), re.IGNORECASE)


def _stale(timestamp_s: float, now_s: float, max_age_s: int) -> bool:
    return abs(now_s - timestamp_s) > max_age_s


def _int_header(headers: Mapping[str, str], name: str) -> int | None:
    text = headers.get(name, "").strip()
    if not text.isascii() or not text.isdigit() or len(text) > 16:
        return None
    return int(text)


# -- pulse ---------------------------------------------------------------------------

def pulse_signature(secret: bytes, timestamp: str, body: bytes) -> str:
    return "v1=" + hmac.new(secret, timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()


def check_pulse(secret: bytes, headers: Mapping[str, str], body: bytes, now_s: float, max_age_s: int) -> str | None:
    ts = _int_header(headers, "X-Pulse-Timestamp")
    given = headers.get("X-Pulse-Signature")
    if ts is None or not given:
        return "missing or malformed X-Pulse-Signature / X-Pulse-Timestamp"
    if _stale(ts, now_s, max_age_s):
        return "timestamp outside the allowed window"
    expected = pulse_signature(secret, str(ts), body)
    if not hmac.compare_digest(expected.encode(), given.strip().encode("utf-8", "replace")):
        return "signature mismatch"
    return None


# -- HubSpot -------------------------------------------------------------------------

def hubspot_uri(scheme: str, host: str, path_and_query: str) -> str:
    """The URI as HubSpot signed it: scheme://host + path and query, the listed escapes decoded."""
    return _HUBSPOT_ESCAPE_RE.sub(lambda m: _HUBSPOT_DECODE[m.group(0).upper()], f"{scheme}://{host}{path_and_query}")


def hubspot_v3(secret: bytes, method: str, uri: str, body: bytes, timestamp: str) -> str:
    message = method.encode() + uri.encode("utf-8") + body + timestamp.encode()
    return base64.b64encode(hmac.new(secret, message, hashlib.sha256).digest()).decode()


def hubspot_v2(secret: bytes, method: str, uri: str, body: bytes) -> str:
    return hashlib.sha256(secret + method.encode() + uri.encode("utf-8") + body).hexdigest()


def hubspot_v1(secret: bytes, body: bytes) -> str:
    return hashlib.sha256(secret + body).hexdigest()


def check_hubspot(secret: bytes, headers: Mapping[str, str], body: bytes, method: str, uri: str,
                  now_s: float, max_age_s: int, legacy: bool = False) -> str | None:
    given = headers.get("X-HubSpot-Signature-v3")
    if given:
        ts = _int_header(headers, "X-HubSpot-Request-Timestamp")
        if ts is None:
            return "missing or malformed X-HubSpot-Request-Timestamp"
        if _stale(ts / 1000.0, now_s, max_age_s):
            return "timestamp outside the allowed window"
        expected = hubspot_v3(secret, method, uri, body, str(ts))
        if not hmac.compare_digest(expected.encode(), given.strip().encode("utf-8", "replace")):
            return "signature mismatch"
        return None
    legacy_given = headers.get("X-HubSpot-Signature")
    if not legacy_given:
        return "missing X-HubSpot-Signature-v3"
    if not legacy:
        return "v1/v2 signature without legacy_signatures: true"
    version = headers.get("X-HubSpot-Signature-Version", "v1").strip().lower()
    if version == "v1":
        expected = hubspot_v1(secret, body)
    elif version == "v2":
        expected = hubspot_v2(secret, method, uri, body)
    else:
        return "unknown X-HubSpot-Signature-Version"
    if not hmac.compare_digest(expected.encode(), legacy_given.strip().lower().encode("utf-8", "replace")):
        return "signature mismatch"
    return None


# -- Pipedrive -----------------------------------------------------------------------

def basic_authorization(user_password: bytes) -> str:
    return "Basic " + base64.b64encode(user_password).decode()


def check_pipedrive(secret: bytes, headers: Mapping[str, str]) -> str | None:
    value = headers.get("Authorization", "")
    scheme, _, token = value.strip().partition(" ")
    if scheme.lower() != "basic" or not token:
        return "missing Basic authorization"
    try:
        given = base64.b64decode(token.strip(), validate=True)
    except (binascii.Error, ValueError):
        return "malformed Basic authorization"
    if not hmac.compare_digest(given, secret):
        return "wrong user or password"
    return None


# -- Close ---------------------------------------------------------------------------

def close_signature(key: bytes, timestamp: str, body: bytes) -> str:
    return hmac.new(key, timestamp.encode() + body, hashlib.sha256).hexdigest()


def check_close(key: bytes, headers: Mapping[str, str], body: bytes, now_s: float, max_age_s: int) -> str | None:
    ts_text = headers.get("close-sig-timestamp", "").strip()
    given = headers.get("close-sig-hash")
    ts = _int_header(headers, "close-sig-timestamp")
    if ts is None or not given:
        return "missing or malformed close-sig-hash / close-sig-timestamp"
    if _stale(ts, now_s, max_age_s):
        return "timestamp outside the allowed window"
    expected = close_signature(key, ts_text, body)
    if not hmac.compare_digest(expected.encode(), given.strip().lower().encode("utf-8", "replace")):
        return "signature mismatch"
    return None
