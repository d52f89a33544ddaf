"""ASGI middleware: consent state per request, the consent API, IP masking, access logs."""

from __future__ import annotations

from consentgate.middleware.accesslog import AccessLogMiddleware
from consentgate.middleware.client import ClientAddressMiddleware
from consentgate.middleware.consent import ConsentMiddleware
from consentgate.middleware.endpoints import ConsentEndpoints
from consentgate.middleware.ipmask import mask_ip
from consentgate.middleware.logfiles import AccessLog, AccessLogError
from consentgate.middleware.useragent import reduce_user_agent

__all__ = [
    "AccessLog",
    "AccessLogError",
    "AccessLogMiddleware",
    "ClientAddressMiddleware",
    "ConsentEndpoints",
    "ConsentMiddleware",
    "mask_ip",
    "reduce_user_agent",
]
