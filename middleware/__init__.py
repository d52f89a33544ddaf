"""ASGI middleware: consent state per request, the consent API, IP masking."""

from __future__ import annotations

from consentgate.middleware.consent import ConsentMiddleware
from consentgate.middleware.endpoints import ConsentEndpoints
from consentgate.middleware.ipmask import mask_ip
from consentgate.middleware.useragent import reduce_user_agent

__all__ = ["ConsentEndpoints", "ConsentMiddleware", "mask_ip", "reduce_user_agent"]
